"""`thoughttrace data ...`: validate, stats, import, export and generate ThoughtTrace datasets."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from .common import UserFacingError, echo_json, wrap

T = TypeVar("T")

_MAX_SHOWN = 1000  # errors printed in text mode (all of them are counted, and all go into --json)


def _progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A tqdm bar on stderr, only when stderr is a terminal (logs and pipes stay clean)."""
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, unit=" conv", total=total, file=sys.stderr, disable=not sys.stderr.isatty(),
                    mininterval=0.5, leave=False)


def _report_dict(report: Any) -> dict[str, Any]:
    return {"lines": report.lines, "valid": report.valid, "invalid_lines": len({e.line for e in report.errors}),
            "errors": [{"line": e.line, "field": e.field, "message": e.message} for e in report.errors]}


def _print_errors(report: Any, path: str, as_warning: bool) -> None:
    prefix = "warning" if as_warning else "error"
    for e in report.errors[:_MAX_SHOWN]:
        click.echo(f"{prefix}: {path}: {e}", err=True)
    if len(report.errors) > _MAX_SHOWN:
        click.echo(f"{prefix}: ... and {len(report.errors) - _MAX_SHOWN} more (use --json for all)", err=True)


@click.group("data")
def group() -> None:
    """Validate, summarise, import and export ThoughtTrace datasets (JSONL, one conversation a line)."""


@group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--skip-invalid", is_flag=True,
              help="report bad lines as warnings and exit 0 when at least one good line was read")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@wrap
def validate_cmd(file: str, skip_invalid: bool, as_json: bool) -> None:
    """Check FILE line by line; exit 1 naming EVERY bad line (line number, field, what is wrong)."""
    from thoughttrace.data.exporters import iter_parquet
    from thoughttrace.data.io import ReadReport, iter_conversations
    from thoughttrace.data.schema import FORMAT_VERSION

    report = ReadReport()
    if Path(file).suffix == ".parquet":  # an export: rows are checked as they are read (first bad row fails)
        stream = iter_parquet(file)
        for _ in _progress(stream, "validate"):
            report.lines += 1
            report.valid += 1
    else:
        for _ in _progress(iter_conversations(file, skip_invalid=True, report=report), "validate"):
            pass
    failed = bool(report.errors) and not (skip_invalid and report.valid > 0)
    if as_json:
        echo_json({"format_version": FORMAT_VERSION, "file": file, "ok": not report.errors, **_report_dict(report)})
    else:
        _print_errors(report, file, as_warning=skip_invalid)
        bad = len({e.line for e in report.errors})
        click.echo(f"{file}: {report.valid} valid conversation(s), {bad} bad line(s) of {report.lines}",
                   err=bool(report.errors))
        if not report.lines:
            click.echo(f"{file}: the file holds no conversations", err=True)
    if failed or report.lines == 0:
        sys.exit(1)


@group.command("stats")
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON (with format_version)")
@click.option("--skip-invalid", is_flag=True, help="skip bad lines (listed on stderr) instead of failing")
@wrap
def stats_cmd(file: str, as_json: bool, skip_invalid: bool) -> None:
    """The release's figures for FILE (JSONL, a Parquet export or an HF directory): counts, lengths, label shares."""
    from thoughttrace.data.exporters import iter_any
    from thoughttrace.data.io import ReadReport
    from thoughttrace.data.stats import compute_stats, format_table

    report = ReadReport()
    stats = compute_stats(_progress(iter_any(file, skip_invalid=skip_invalid, report=report), "stats"))
    if stats.conversations == 0:
        # like `validate`: an empty input is an error, not an all-zero table a script would take as figures
        if report.errors:
            _print_errors(report, file, as_warning=False)
        raise UserFacingError(f"{file}: no valid conversation to summarise ({report.lines} line(s) read); "
                              "check the file (thoughttrace data validate FILE)")
    if report.errors:
        _print_errors(report, file, as_warning=True)
        click.echo(f"warning: skipped {len({e.line for e in report.errors})} bad line(s)", err=True)
    if as_json:
        out = stats.model_dump()
        if report.errors:
            out["skipped_lines"] = sorted({e.line for e in report.errors})
        echo_json(out)
    else:
        click.echo(format_table(stats))


@group.command("import")
@click.option("--from", "source", required=True, type=click.Choice(["wildchat", "lmsys", "sharegpt", "openai"]),
              help="source format of IN")
@click.argument("in_path", metavar="IN", type=click.Path(dir_okay=False))
@click.argument("out_path", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--skip-invalid", is_flag=True, help="skip bad records (listed on stderr) instead of failing")
@wrap
def import_cmd(source: str, in_path: str, out_path: str, skip_invalid: bool) -> None:
    """Convert IN (JSONL, .jsonl.gz, a .json list or Parquet) to ThoughtTrace JSONL at OUT (no thoughts)."""
    from thoughttrace.data.exporters import write_manifest
    from thoughttrace.data.importers import import_file

    report = import_file(source, in_path, out_path, skip_invalid=skip_invalid,
                         wrap=lambda s: _progress(s, f"import {source}"))
    if report.errors:
        _print_errors(report, in_path, as_warning=True)
    write_manifest(Path(out_path), "jsonl", report.valid, imported_from=source,
                   skipped_records=len({e.line for e in report.errors}), skipped_empty=report.empty)
    empty = f" ({report.empty} of them empty conversations)" if report.empty else ""
    click.echo(f"imported {report.valid} conversation(s) from {source} into {out_path}"
               + (f"; skipped {len({e.line for e in report.errors})} bad record(s){empty}" if report.errors else ""),
               err=True)
    if report.valid == 0:
        raise UserFacingError(f"{in_path}: no conversation could be imported")


@group.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True, type=click.Choice(["jsonl", "parquet", "hf"]),
              help="jsonl, parquet (pyarrow) or hf (datasets save_to_disk directory)")
@click.argument("out", type=click.Path())
@click.option("--skip-invalid", is_flag=True, help="export the good lines, list the bad ones on stderr")
@click.option("--overwrite", is_flag=True, help="replace an existing HF output directory")
@wrap
def export_cmd(file: str, fmt: str, out: str, skip_invalid: bool, overwrite: bool) -> None:
    """Write the conversations of FILE as jsonl, parquet or a Hugging Face dataset directory at OUT."""
    from thoughttrace.data.exporters import export
    from thoughttrace.data.io import ReadReport, iter_conversations

    if fmt == "hf" and not sys.stderr.isatty():
        import datasets

        datasets.disable_progress_bars()
    report = ReadReport()
    n = export(_progress(iter_conversations(file, skip_invalid=skip_invalid, report=report), f"export {fmt}"),
               fmt, out, overwrite=overwrite)
    if report.errors:
        _print_errors(report, file, as_warning=True)
    click.echo(f"wrote {n} conversation(s) to {out} ({fmt})", err=True)


@group.command("generate")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--n", "n", type=click.IntRange(min=0), default=1000, show_default=True, help="conversations")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-messages", type=click.IntRange(min=2), default=2, show_default=True)
@click.option("--max-messages", type=click.IntRange(min=2), default=16, show_default=True)
@wrap
def generate_cmd(out: str, n: int, seed: int, min_messages: int, max_messages: int) -> None:
    """Write N synthetic conversations (the release's label and domain shares) to OUT, deterministic per seed."""
    from thoughttrace.data.exporters import write_manifest
    from thoughttrace.data.io import write_conversations
    from thoughttrace.data.synthetic import generate_conversations

    if max_messages < min_messages:
        raise UserFacingError("--max-messages must be >= --min-messages")
    convs = generate_conversations(n, seed, length_range=(min_messages, max_messages))
    written = write_conversations(_progress(convs, "generate", total=n), out)
    write_manifest(Path(out), "jsonl", written, synthetic={"seed": seed, "n": n,
                                                          "length_range": [min_messages, max_messages]})
    click.echo(f"wrote {written} synthetic conversation(s) to {out}", err=True)
