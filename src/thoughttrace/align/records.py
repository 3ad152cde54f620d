"""JSONL files of the align pipeline: every row carries `format_version`; bad rows fail with their line number.

One small reader/writer shared by rewrites, pairs, answers, judgments and metrics, so that each of those
modules only says what its rows contain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from thoughttrace.data.io import first_validation_error, iter_json_objects
from thoughttrace.outputs import open_output, write_output_text

FORMAT_VERSION = 1

M = TypeVar("M", bound=BaseModel)


class AlignError(ValueError):
    """Bad input to the align pipeline; the message says what to fix (shown without a traceback)."""


class LeakageError(AssertionError):
    """A private thought reached a prompt of a condition that must not see it: a bug, never silenced."""


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; a bad line raises AlignError naming it."""
    return iter_json_objects(path, error=AlignError)


def read_models(path: str | Path, model: type[M], what: str) -> list[M]:
    """Read and validate every row as `model`; errors name the line and the field."""
    rows: list[M] = []
    for line_no, obj in iter_jsonl(path):
        version = obj.get("format_version", FORMAT_VERSION)
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise AlignError(f"{path}: line {line_no}: format_version {version} is newer than this toolkit "
                             f"reads ({FORMAT_VERSION}); upgrade thoughttrace")
        try:
            rows.append(model.model_validate(obj))
        except ValidationError as exc:
            raise AlignError(f"{path}: line {line_no}: not a valid {what}: {first_validation_error(exc)}") from exc
    return rows


def write_jsonl(rows: Iterable[BaseModel | dict[str, Any]], path: str | Path) -> int:
    """Write rows atomically (temp file, then rename); returns how many were written."""
    n = 0
    with open_output(path) as fh:
        for row in rows:
            obj = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(row: BaseModel | dict[str, Any], path: str | Path) -> None:
    """Append one row (for logs that grow during a run and must survive a crash)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    obj = row.model_dump(mode="json") if isinstance(row, BaseModel) else row
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(obj, ensure_ascii=False) + "\n")


def write_json(obj: Any, path: str | Path) -> None:
    write_output_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_resource(name: str) -> str:
    """A package data file of thoughttrace.align (prompts/..., resources/...)."""
    from importlib.resources import files

    return files("thoughttrace.align").joinpath(name).read_text(encoding="utf-8")
