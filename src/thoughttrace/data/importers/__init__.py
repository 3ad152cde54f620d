"""Importers: the usual chat-log formats -> ThoughtTrace conversations (no thoughts; one module per source).

`import_file(source, in_path, out_path)` streams a source file (JSONL, .jsonl.gz, a .json list or
Parquet) into ThoughtTrace JSONL. Bad records are reported with their line (or Parquet row) and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..io import DatasetError, ReadReport, write_conversations
from ..schema import Conversation
from . import lmsys, openai_messages, sharegpt, wildchat
from ._common import Converter, RecordError, guess_provider, iter_imported, iter_source

#: source name -> converter of one record
IMPORTERS: dict[str, Converter] = {
    "wildchat": wildchat.convert,
    "lmsys": lmsys.convert,
    "sharegpt": sharegpt.convert,
    "openai": openai_messages.convert,
}


def get_converter(source: str) -> Converter:
    try:
        return IMPORTERS[source]
    except KeyError:
        raise DatasetError(f"unknown source {source!r}; choose one of {', '.join(IMPORTERS)}") from None


def iter_import(source: str, in_path: str | Path, *, skip_invalid: bool = False,
                report: ReadReport | None = None) -> Iterator[Conversation]:
    """Converted conversations of a source file, streaming."""
    return iter_imported(get_converter(source), in_path, skip_invalid=skip_invalid, report=report, source=source)


def import_file(source: str, in_path: str | Path, out_path: str | Path, *, skip_invalid: bool = False,
                wrap: Callable[[Iterable[Conversation]], Iterable[Conversation]] | None = None) -> ReadReport:
    """Convert a whole source file to ThoughtTrace JSONL; returns what was read (and skipped).

    Strict by default: the first bad record raises DatasetError and nothing is written. `wrap` lets the
    CLI put a progress bar around the stream.
    """
    report = ReadReport()
    stream: Iterable[Conversation] = iter_import(source, in_path, skip_invalid=skip_invalid, report=report)
    if wrap is not None:
        stream = wrap(stream)
    try:
        write_conversations(stream, out_path)
    except DatasetError:
        tmp = Path(out_path).with_name(Path(out_path).name + ".tmp")
        tmp.unlink(missing_ok=True)
        raise
    return report


__all__ = ["IMPORTERS", "RecordError", "get_converter", "guess_provider", "import_file", "iter_import",
           "iter_source"]
