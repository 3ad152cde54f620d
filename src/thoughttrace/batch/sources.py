"""Input shards: a dataset file cut into fixed pieces that any worker can read on its own.

Why not `ray.data.read_json`: a single JSONL file is one read task in Ray, and schema inference over the
nested conversation records is fragile. A shard here is a deterministic slice of the input (a byte range of
a JSONL file, a row range of a Parquet file or of a Hugging Face `save_to_disk` directory), computed from
file metadata only: the driver never reads the rows, and a rerun cuts the same shards, which is what makes
the finished-shard manifest a correct resume source.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from thoughttrace.data import Conversation, DatasetError
from thoughttrace.data.exporters import detect_format, from_row
from thoughttrace.data.io import parse_line

#: bytes read from the head of a JSONL file to estimate the bytes per conversation
_SAMPLE_BYTES = 1 << 20


@dataclass(frozen=True)
class ShardPlan:
    """How an input is cut: enough to re-read any shard on any machine and to refuse a changed input."""

    input: str
    format: str
    n_shards: int
    shard_rows: int
    #: JSONL: bytes per shard (a line belongs to the shard where it starts); Parquet/HF: rows per shard
    step: int
    size: int
    mtime_ns: int
    #: JSONL: the byte offset where each shard starts, and the end (n_shards + 1 values): cut at line starts,
    #: so no shard is empty; plans written before this field read shard k as [k * step, (k + 1) * step)
    offsets: tuple[int, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_shards(path: str | Path, shard_rows: int) -> ShardPlan:
    """Cut `path` into shards of about `shard_rows` conversations, from metadata (and a 1 MB sample) only."""
    if shard_rows < 1:
        raise ValueError("--shard-size must be at least 1 conversation")
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or directory; check the path")
    fmt = detect_format(p)
    stat = p.stat()
    if fmt == "jsonl":
        if p.suffix == ".gz":
            raise DatasetError(f"{p}: a gzipped file cannot be cut into shards; gunzip it or export it to Parquet "
                               "(`thoughttrace data export FILE --format parquet OUT`)")
        size = stat.st_size
        with open(p, "rb") as fh:
            head = fh.read(_SAMPLE_BYTES)
        lines = max(1, head.count(b"\n"))
        per_line = max(1, len(head) // lines)
        end = _content_end(p, size)
        # n equal byte ranges, n = the estimated rows / shard_rows rounded: 2,000 rows at 1,000 are 2 shards of
        # ~1,000, not 997 + 991 + a 12-row tail that costs a worker's start-up (and, queued, a whole shard's time)
        n = max(1, round(end / per_line / shard_rows))
        step = max(1, -(-end // n))
        offsets = _line_cuts(p, step, end)
        return ShardPlan(str(p.resolve()), fmt, len(offsets) - 1, shard_rows, step, size, stat.st_mtime_ns,
                         tuple(offsets))
    rows = _count_rows(p, fmt)
    n = -(-rows // shard_rows)  # no rows: no shard (an empty shard is work for nothing)
    return ShardPlan(str(p.resolve()), fmt, n, shard_rows, shard_rows, rows, stat.st_mtime_ns)


def _content_end(p: Path, size: int) -> int:
    """The offset just past the last non-blank byte: trailing blank lines start no shard."""
    end = size
    with open(p, "rb") as fh:
        while end > 0:
            start = max(0, end - 4096)
            fh.seek(start)
            chunk = fh.read(end - start)
            stripped = chunk.rstrip()
            if stripped:
                return start + len(stripped)
            end = start
    return 0


def _line_cuts(p: Path, step: int, end: int) -> list[int]:
    """Shard boundaries about `step` bytes apart, each moved to the next line start; none repeats.

    One seek and one line read per shard (no pass over the rows). A shard is [cut_k, cut_k+1): it holds at
    least the line that starts at cut_k, so a plan never ends with (or holds) an empty shard; an empty
    input has no shard.
    """
    if end <= 0:
        return [0]
    cuts = [0]
    with open(p, "rb") as fh:
        target = step
        while target < end:
            fh.seek(target - 1)
            fh.readline()  # to the end of the line holding byte target - 1
            cut = fh.tell()
            if cut >= end:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
            target = max(target + step, cut + 1)
    cuts.append(end)
    return cuts


def shard_range(plan: dict[str, Any], k: int) -> tuple[int, int]:
    """Byte range [start, end) of JSONL shard `k` (lines that start in it belong to it)."""
    offsets = plan.get("offsets")
    if offsets:
        return int(offsets[k]), int(offsets[k + 1])
    step = int(plan["step"])
    return k * step, (k + 1) * step


def _count_rows(p: Path, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(p).metadata.num_rows)
    import datasets

    return len(_load_hf(p, datasets))


def _load_hf(p: Path, datasets: Any) -> Any:
    ds = datasets.load_from_disk(str(p))
    if not isinstance(ds, datasets.Dataset):
        raise DatasetError(f"{p}: holds several splits; point at one split's directory")
    return ds


def check_same_input(plan: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume when the input file changed since the shards were cut."""
    st = os.stat(path)
    size_now = st.st_size if plan["format"] == "jsonl" else plan["size"]
    if plan["size"] != size_now or plan["mtime_ns"] != st.st_mtime_ns:
        raise DatasetError(
            f"{path} changed since this output was started (size or modification time differ from its "
            "plan.json); use a new --out directory, or delete the old one to start over")


def read_shard(plan: dict[str, Any], k: int, *, skip_invalid: bool = False) -> Iterator[Conversation]:
    """The conversations of shard `k`, in input order."""
    fmt, path, step = plan["format"], plan["input"], int(plan["step"])
    if fmt == "jsonl":
        yield from _jsonl_range(path, *shard_range(plan, k), skip_invalid)
        return
    start, end = k * step, min((k + 1) * step, int(plan["size"]))
    if fmt == "parquet":
        yield from _parquet_range(path, start, end)
        return
    import datasets

    ds = _load_hf(Path(path), datasets)
    for row in ds.select(range(start, end)):
        yield from_row(dict(row))


def read_lines(plan: dict[str, Any], k: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) of every non-blank line of JSONL shard `k`: for jobs whose rows are not conversations."""
    if plan["format"] != "jsonl":
        raise DatasetError(f"{plan['input']}: this job reads a JSONL file; convert the {plan['format']} input to JSONL")
    yield from _lines(plan["input"], *shard_range(plan, k))


def _lines(path: str, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Lines that start in [start, end): every line belongs to exactly one shard."""
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # the rest of the line that started before `start` belongs to the previous shard
        while fh.tell() < end:
            offset = fh.tell()
            text = fh.readline()
            if not text:
                break
            if offset == 0 and text.startswith(b"\xef\xbb\xbf"):
                text = text[3:]
            if text.strip():
                yield offset, text


def _jsonl_range(path: str, start: int, end: int, skip_invalid: bool) -> Iterator[Conversation]:
    for offset, text in _lines(path, start, end):
        conv, errors = parse_line(text, 0)
        if conv is None:
            if skip_invalid:
                continue
            what = "; ".join(f"{e.field + ': ' if e.field else ''}{e.message}" for e in errors)
            raise DatasetError(f"{path}: the line at byte {offset}: {what} (fix the line, or pass "
                               "--skip-invalid to read only the good lines)")
        yield conv


def _parquet_range(path: str, start: int, end: int) -> Iterator[Conversation]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    first = 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        lo, hi = max(start, first), min(end, first + n)
        if lo < hi:
            table = pf.read_row_group(g).slice(lo - first, hi - lo)
            for row in table.to_pylist():
                yield from_row(row)
        first += n
        if first >= end:
            break
