"""Streaming JSONL reading and writing of conversations: memory stays flat in the file size.

`iter_conversations` validates line by line. Bad lines become `LineError`s (line number, field, message);
in strict mode the first one raises `DatasetError`, with `skip_invalid` they are collected and the good
lines still come through.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from ..outputs import open_output
from .schema import Conversation


class DatasetError(Exception):
    """A dataset file is unreadable or invalid; the message names the line and field and how to fix it."""


@dataclass
class LineError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f", field '{self.field}'" if self.field else ""
        return f"line {self.line}{where}: {self.message}"


@dataclass
class ReadReport:
    """What a read saw: lines read, conversations accepted, and every bad line."""

    lines: int = 0
    valid: int = 0
    errors: list[LineError] = field(default_factory=list)
    #: records skipped because their conversation was empty (importers; also listed in `errors`)
    empty: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors


def open_text(path: str | Path, mode: str = "r") -> IO[str]:
    """Open plain or .gz text files; '-' is not supported (pass a path)."""
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(p, mode, encoding="utf-8")


def open_binary(path: str | Path) -> IO[bytes]:
    """Open plain or .gz files for reading bytes (lines are parsed without decoding them first)."""
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return open(p, "rb", buffering=1 << 20)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_validation_error(exc: ValidationError) -> str:
    """"field 'a.b': message" for the first problem pydantic found: one line that says what to fix."""
    first = exc.errors()[0]
    return f"field '{_field_path(first['loc']) or '(row)'}': {first['msg']}"


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc)


def parse_line(text: str | bytes, line_no: int) -> tuple[Conversation | None, list[LineError]]:
    """Parse one JSONL line into a Conversation, or the list of what is wrong with it.

    Fast path: pydantic parses and validates the raw line in one go (no intermediate dicts). Only a line
    that fails takes the slow path, which re-parses it with `json` to say precisely what is wrong.
    """
    try:
        return Conversation.model_validate_json(text), []
    except ValidationError:
        pass
    text = text.rstrip(b"\r\n") if isinstance(text, bytes) else text.rstrip("\r\n")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [LineError(line_no, "", f"not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8")]
    try:
        obj = json.loads(text)
    except RecursionError:
        return None, [LineError(line_no, "", "JSON nested too deeply to be a conversation")]
    except json.JSONDecodeError as exc:
        return None, [LineError(line_no, "", f"not valid JSON: {exc.msg} (column {exc.colno}); "
                                             "the line may be truncated")]
    if not isinstance(obj, dict):
        return None, [LineError(line_no, "", f"expected a JSON object (one conversation), got {type(obj).__name__}")]
    try:
        return Conversation.model_validate(obj), []
    except ValidationError as exc:
        return None, [
            LineError(line_no, _field_path(e["loc"]), f"{e['msg']} (got {_short(e.get('input'))})")
            for e in exc.errors()
        ]


def iter_json_objects(
    path: str | Path, *, error: type[Exception] = DatasetError, missing: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line of a JSONL file of objects (labels, pairs, items ...).

    A line that is not a JSON object raises `error` (the caller's own error type) naming the file and line.
    """
    p = Path(path)
    if not p.exists():
        raise error(missing or f"{p}: no such file; check the path")
    if p.is_dir():
        raise error(f"{p}: is a directory; give a .jsonl file")
    with open(p, encoding="utf-8-sig") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{p}: line {line_no}: not valid JSON ({exc.msg}); the line may be truncated") from exc
            if not isinstance(obj, dict):
                raise error(f"{p}: line {line_no}: expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def numbered_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a dataset file, a byte-order mark removed; a missing path or a folder is an
    error naming the fix. The one reader under `iter_conversations` and the fast path (data/fast.py)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise DatasetError(f"{p}: is a directory; give a .jsonl (or .jsonl.gz) file, one conversation a line")
    with open_binary(p) as fh:
        for line_no, text in enumerate(fh, start=1):
            if line_no == 1 and text.startswith(b"\xef\xbb\xbf"):
                text = text[3:]  # a UTF-8 byte-order mark (some editors write one)
            yield line_no, text


def bad_line(path: str | Path, errors: list[LineError]) -> DatasetError:
    """The strict readers' error for a bad line: every problem of it, and the way to read past it."""
    return DatasetError(f"{path}: " + "; ".join(str(e) for e in errors)
                        + " (fix the line, or pass --skip-invalid to read only the good lines)")


def iter_conversations(
    path: str | Path, *, skip_invalid: bool = False, report: ReadReport | None = None
) -> Iterator[Conversation]:
    """Yield conversations one by one. Strict by default: the first bad line raises DatasetError."""
    report = report if report is not None else ReadReport()
    for line_no, text in numbered_lines(path):
        if not text.strip():
            continue
        report.lines += 1
        conv, errors = parse_line(text, line_no)
        if conv is None:
            report.errors.extend(errors)
            if not skip_invalid:
                raise bad_line(path, errors)
            continue
        report.valid += 1
        yield conv


def read_conversations(path: str | Path, *, skip_invalid: bool = False) -> list[Conversation]:
    return list(iter_conversations(path, skip_invalid=skip_invalid))


def validate_file(path: str | Path, max_errors: int | None = None) -> ReadReport:
    """Read the whole file and report every bad line (not only the first).

    Through `data.fast` (msgspec, pydantic for the lines it cannot accept): the same verdicts and
    messages, without building a model per good line."""
    from .fast import iter_validated

    report = ReadReport()
    for _ in iter_validated(path, skip_invalid=True, report=report):
        if max_errors is not None and len(report.errors) >= max_errors:
            break
    return report


def write_conversations(conversations: Iterable[Conversation | dict[str, Any]], path: str | Path) -> int:
    """Write JSONL (the released field names); returns the number written.

    By thoughttrace.outputs' rules: complete or not at all, a device or FIFO written in place, `-` for stdout,
    a symlink refused."""
    n = 0
    with open_output(path, "w", allow_stdout=True) as fh:
        for conv in conversations:
            if isinstance(conv, Conversation):
                fh.write(conv.model_dump_json() + "\n")  # same content as to_json_dict(), without the dict
            else:
                fh.write(json.dumps(conv, ensure_ascii=False) + "\n")
            n += 1
    return n
