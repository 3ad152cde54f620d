"""Exports of ThoughtTrace conversations: JSONL, Parquet (pyarrow) and Hugging Face `datasets`.

Parquet layout (chosen for analysis tools: DuckDB, Polars, pandas, Spark read it without any JSON step):
one row per conversation; the schema's fields are typed columns; `messages` is a `list<struct>` column
whose structs hold `reasons` / `reactions` as `list<struct<content, timestamp, label, extra>>`. Fields
outside the schema (importer metadata such as `language` or `source`, at any level) go into an `extra`
column / struct field as a JSON string, and `survey_answers` (free-form in the release) is a JSON string.
A null list stays null and an empty list stays empty, so a round trip gives back equal conversations.
The file's schema metadata carries `thoughttrace.format_version`.

Hugging Face: the same columns, `save_to_disk(OUT)` plus `OUT/thoughttrace.json` (format version, count).
To publish: `datasets.load_from_disk(OUT).push_to_hub("org/name")` (needs `huggingface-cli login`).
JSONL: the released schema, one conversation a line, plus `OUT.thoughttrace.json` beside it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .io import DatasetError, iter_conversations, write_conversations
from .schema import FORMAT_VERSION, Conversation

FORMATS = ("jsonl", "parquet", "hf")
MANIFEST_NAME = "thoughttrace.json"
_META_VERSION = b"thoughttrace.format_version"
_META_KIND = b"thoughttrace.kind"
_BATCH = 2048

_CONV_FIELDS = ("id", "model_name", "model_provider", "created_at", "updated_at", "task_summary",
                "task_expectation", "survey_answers", "domain", "topic", "user_id", "messages")
_MSG_FIELDS = ("id", "timestamp", "type", "content", "reasons", "reactions")
_THOUGHT_FIELDS = ("content", "timestamp", "label")


def arrow_schema() -> Any:
    """The Parquet / Arrow schema of a conversation row (see the module docstring)."""
    import pyarrow as pa

    s = pa.string()
    thought = pa.struct([("content", s), ("timestamp", s), ("label", s), ("extra", s)])
    message = pa.struct([("id", s), ("timestamp", s), ("type", s), ("content", s),
                         ("reasons", pa.list_(thought)), ("reactions", pa.list_(thought)), ("extra", s)])
    fields = [(name, s) for name in _CONV_FIELDS if name != "messages"]
    fields += [("messages", pa.list_(message)), ("extra", s)]
    return pa.schema(fields, metadata={_META_VERSION: str(FORMAT_VERSION).encode(),
                                       _META_KIND: b"conversations"})


def _extra(d: dict[str, Any], known: tuple[str, ...]) -> str | None:
    rest = {k: v for k, v in d.items() if k not in known}
    return json.dumps(rest, ensure_ascii=False) if rest else None


def _thought_row(t: dict[str, Any]) -> dict[str, Any]:
    row = {k: t.get(k) for k in _THOUGHT_FIELDS}
    row["extra"] = _extra(t, _THOUGHT_FIELDS)
    return row


def to_row(conv: Conversation) -> dict[str, Any]:
    """A conversation as one Arrow row (dict), extras JSON-encoded."""
    d = conv.to_json_dict()
    row: dict[str, Any] = {k: d.get(k) for k in _CONV_FIELDS if k != "messages"}
    if row["survey_answers"] is not None:
        row["survey_answers"] = json.dumps(row["survey_answers"], ensure_ascii=False)
    msgs = []
    for m in d["messages"]:
        mrow = {k: m.get(k) for k in _MSG_FIELDS}
        for kind in ("reasons", "reactions"):
            if mrow[kind] is not None:
                mrow[kind] = [_thought_row(t) for t in mrow[kind]]
        mrow["extra"] = _extra(m, _MSG_FIELDS)
        msgs.append(mrow)
    row["messages"] = msgs
    row["extra"] = _extra(d, _CONV_FIELDS)
    return row


def _merge_extra(row: dict[str, Any]) -> dict[str, Any]:
    extra = row.pop("extra", None)
    if extra:
        row.update(json.loads(extra))
    return row


def from_row(row: dict[str, Any]) -> Conversation:
    """The inverse of `to_row` (also reads rows loaded by `datasets`)."""
    row = dict(row)
    if row.get("survey_answers") is not None:
        row["survey_answers"] = json.loads(row["survey_answers"])
    msgs = []
    for m in row.get("messages") or []:
        m = dict(m)
        for kind in ("reasons", "reactions"):
            if m.get(kind) is not None:
                m[kind] = [_merge_extra(dict(t)) for t in m[kind]]
        msgs.append(_merge_extra(m))
    row["messages"] = msgs
    return Conversation.model_validate(_merge_extra(row))


def _batches(conversations: Iterable[Conversation], size: int = _BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for conv in conversations:
        batch.append(to_row(conv))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_parquet(conversations: Iterable[Conversation], path: str | Path) -> int:
    """Stream conversations into a Parquet file (row groups of 2048); returns the number written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from thoughttrace.outputs import open_output

    schema = arrow_schema()
    n = 0
    with open_output(path, "wb") as fh, pq.ParquetWriter(fh, schema, compression="zstd") as writer:
        for batch in _batches(conversations):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n


def _check_version(version: Any, where: str) -> None:
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: no thoughttrace format version; was it written by `thoughttrace data "
                           "export`?") from None
    if v > FORMAT_VERSION:
        raise DatasetError(f"{where}: format version {v} is newer than this thoughttrace ({FORMAT_VERSION}); "
                           "upgrade thoughttrace")


def iter_parquet(path: str | Path) -> Iterator[Conversation]:
    """Conversations of a Parquet export, one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from None
    meta = pf.schema_arrow.metadata or {}
    _check_version(meta.get(_META_VERSION), str(path))
    row_no = 0
    for batch in pf.iter_batches(batch_size=_BATCH):
        for row in batch.to_pylist():
            row_no += 1
            try:
                yield from_row(row)
            except (ValueError, KeyError, TypeError) as exc:
                raise DatasetError(f"{path}: row {row_no}: not a thoughttrace conversation ({exc})") from None


def write_manifest(target: Path, fmt: str, count: int, **info: Any) -> Path | None:
    """`thoughttrace.json` in an HF dir, or `<file>.thoughttrace.json` beside a JSONL file.

    None (nothing written) when the output was a device, a FIFO or stdout: a side file beside /dev/null would
    be litter the command was not asked for."""
    from thoughttrace import __version__
    from thoughttrace.outputs import is_stream

    if not target.is_dir() and is_stream(target):
        return None
    where = target / MANIFEST_NAME if target.is_dir() else target.with_name(target.name + "." + MANIFEST_NAME)
    manifest = {"format_version": FORMAT_VERSION, "kind": "thoughttrace-conversations", "format": fmt,
                "count": count, "written_by": f"thoughttrace {__version__}", **info}
    from thoughttrace.outputs import write_output_text

    write_output_text(where, json.dumps(manifest, indent=2) + "\n")
    return where


def write_hf(conversations: Iterable[Conversation], out_dir: str | Path, *, overwrite: bool = False) -> int:
    """A Hugging Face `datasets` directory (`save_to_disk`); built from a temp Parquet file (memory flat)."""
    import datasets

    out = Path(out_dir)
    occupied = any(out.iterdir()) if out.is_dir() else out.exists()
    if occupied:
        if not overwrite:
            raise DatasetError(f"{out}: already exists; pass --overwrite to replace it, or choose another output "
                               "directory")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    with tempfile.TemporaryDirectory(prefix="thoughttrace-hf-") as tmp:
        pq_path = Path(tmp) / "data.parquet"
        n = write_parquet(conversations, pq_path)
        ds = datasets.Dataset.from_parquet(str(pq_path), cache_dir=str(Path(tmp) / "cache"))
        assert isinstance(ds, datasets.Dataset)
        ds.save_to_disk(str(out))
        del ds
    write_manifest(out, "hf", n)
    return n


def iter_hf(path: str | Path) -> Iterator[Conversation]:
    """Conversations of a `save_to_disk` directory written by `write_hf`."""
    import datasets

    p = Path(path)
    manifest = p / MANIFEST_NAME
    if manifest.exists():
        _check_version(json.loads(manifest.read_text("utf-8")).get("format_version"), str(manifest))
    ds = datasets.load_from_disk(str(p))
    if not isinstance(ds, datasets.Dataset):
        raise DatasetError(f"{p}: holds several splits; point at one split's directory")
    for row in ds:
        yield from_row(dict(row))


def write_jsonl(conversations: Iterable[Conversation], path: str | Path) -> int:
    n = write_conversations(conversations, path)
    write_manifest(Path(path), "jsonl", n)
    return n


def export(conversations: Iterable[Conversation], fmt: str, out: str | Path, *, overwrite: bool = False) -> int:
    """Write conversations in one of FORMATS; returns the number written."""
    if fmt == "jsonl":
        return write_jsonl(conversations, out)
    if fmt == "parquet":
        return write_parquet(conversations, out)
    if fmt == "hf":
        return write_hf(conversations, out, overwrite=overwrite)
    raise DatasetError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def detect_format(path: str | Path) -> str:
    """'hf' for a save_to_disk directory, 'parquet' for *.parquet, else 'jsonl'."""
    p = Path(path)
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "state.json").exists():
            return "hf"
        raise DatasetError(f"{p}: a directory that is not a Hugging Face dataset (no state.json)")
    return "parquet" if p.suffix == ".parquet" else "jsonl"


def iter_any(path: str | Path, *, skip_invalid: bool = False, report: Any = None) -> Iterator[Conversation]:
    """Conversations from JSONL, a Parquet export or an HF directory, chosen by `detect_format`."""
    fmt = detect_format(path)
    if fmt == "hf":
        return iter_hf(path)
    if fmt == "parquet":
        return iter_parquet(path)
    return iter_conversations(path, skip_invalid=skip_invalid, report=report)
