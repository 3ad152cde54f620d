"""`thoughttrace cache ...`: inspect, clear, prune, export and import the model response cache."""

from __future__ import annotations

from pathlib import Path

import click

from thoughttrace.llm.cache import ResponseCache, default_cache_path

from .common import echo_json, wrap

cache_option = click.option(
    "--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
    help="cache file (default: THOUGHTTRACE_CACHE or ~/.cache/thoughttrace/llm-cache.sqlite)",
)


def _open(cache_path: str | None) -> ResponseCache:
    return ResponseCache(Path(cache_path) if cache_path else default_cache_path())


@click.group("cache")
def group() -> None:
    """The SQLite response cache: portable, replayable offline with `--cache FILE --offline`."""


@group.command("info")
@cache_option
@click.option("--json", "as_json", is_flag=True)
@wrap
def info(cache_path: str | None, as_json: bool) -> None:
    """Entries per model and request kind, and the file size."""
    data = _open(cache_path).info()
    if as_json:
        echo_json(data)
        return
    click.echo(f"{data['path']}: {data['entries']} entries, {data['bytes'] / 1e6:.1f} MB")
    for row in data["by_model"]:
        click.echo(f"  {row['model']:<50} {row['kind']:<22} {row['entries']}")


@group.command("clear")
@cache_option
@click.option("--model", default=None, help="only this model's entries")
@wrap
def clear(cache_path: str | None, model: str | None) -> None:
    """Delete entries (all, or one model's)."""
    click.echo(f"deleted {_open(cache_path).clear(model)} entries")


@group.command("prune")
@cache_option
@click.option("--older-than-days", type=float, required=True)
@wrap
def prune(cache_path: str | None, older_than_days: float) -> None:
    """Delete entries older than N days."""
    click.echo(f"deleted {_open(cache_path).prune(older_than_days)} entries")


@group.command("export")
@cache_option
@click.argument("out", type=click.Path(dir_okay=False))
@wrap
def export(cache_path: str | None, out: str) -> None:
    """Write every entry to a JSONL file (to replay a run elsewhere)."""
    click.echo(f"exported {_open(cache_path).export_jsonl(out)} entries to {out}")


@group.command("import")
@cache_option
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@wrap
def import_(cache_path: str | None, src: str) -> None:
    """Merge entries from an exported JSONL or another cache file."""
    click.echo(f"imported {_open(cache_path).import_file(src)} entries from {src}")
