"""`thoughttrace study pause|open|close|status|export`: the study's state and its dataset, from the shell.

Pause and close act on the database, so every server worker sees them at the next new entry: new
participants get a page saying the study is paused (or closed); people already in it finish. The
database URL comes from `--db` or THOUGHTTRACE_DB_URL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from .common import UserFacingError


def _db(db_url: str | None) -> Any:
    from thoughttrace.collect.db import Database
    from thoughttrace.collect.migrate import current_revision

    url = db_url or os.environ.get("THOUGHTTRACE_DB_URL")
    if not url:
        raise UserFacingError("no database given: pass --db URL or set THOUGHTTRACE_DB_URL")
    db = Database(url)
    try:
        revision = current_revision(db.engine)
    except Exception as exc:  # a URL that does not connect: say so, no traceback
        db.dispose()
        raise UserFacingError(f"cannot open the study database {url}: {exc}") from None
    if revision is None:
        db.dispose()
        raise UserFacingError(f"{url} is not a study database yet: start `thoughttrace serve --db {url}` once")
    return db


def _set(db_url: str | None, state: str, note: str, as_json: bool) -> None:
    from thoughttrace.collect.flow import FlowError
    from thoughttrace.collect.migrate import upgrade
    from thoughttrace.collect.researcher import set_study_state

    db = _db(db_url)
    try:
        upgrade(db.engine)  # an older database gets the study_state table first
        with db.session() as s:
            before = set_study_state(s, state, note, actor="command line")
    except FlowError as exc:
        raise UserFacingError(exc.message) from None
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps({"state": state, "before": before}))
    else:
        click.echo(f"study state: {before} -> {state}")


_db_option = click.option("--db", "db_url", default=None, help="database URL (default THOUGHTTRACE_DB_URL)")
_note_option = click.option("--note", default="", help="a note for the audit log")
_json_option = click.option("--json", "as_json", is_flag=True, help="print the result as JSON")


@click.group("study")
def group() -> None:
    """Pause, close or reopen the running study; export its dataset with the codebook."""


@group.command("pause")
@_db_option
@_note_option
@_json_option
def pause(db_url: str | None, note: str, as_json: bool) -> None:
    """Take no new participants for now (people in the study finish)."""
    _set(db_url, "paused", note, as_json)


@group.command("close")
@_db_option
@_note_option
@_json_option
def close(db_url: str | None, note: str, as_json: bool) -> None:
    """Take no new participants (people in the study finish); `open` undoes it."""
    _set(db_url, "closed", note, as_json)


@group.command("open")
@_db_option
@_note_option
@_json_option
def open_(db_url: str | None, note: str, as_json: bool) -> None:
    """Take new participants again."""
    _set(db_url, "open", note, as_json)


@group.command("status")
@_db_option
@_json_option
def status(db_url: str | None, as_json: bool) -> None:
    """The study's state and its stored configuration versions."""
    from thoughttrace.collect.researcher import study_state_of
    from thoughttrace.collect.versions import version_rows

    db = _db(db_url)
    try:
        with db.session() as s:
            state = study_state_of(s)
            versions = version_rows(s.connection())
    finally:
        db.dispose()
    if as_json:
        click.echo(json.dumps({**state, "versions": versions}))
        return
    click.echo(f"state: {state['state']}" + (f" ({state['detail']})" if state["detail"] else ""))
    for v in versions:
        click.echo(f"version {v['version']}: {v['content_hash'][:12]} design {v['design_id']} since {v['created_at']}")


@group.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@_db_option
@click.option("--include-prolific", is_flag=True, help="add Prolific ids (keep such a file private)")
@click.option("--completed-only", is_flag=True, help="only participants who finished")
def export(out: Path, db_url: str | None, include_prolific: bool, completed_only: bool) -> None:
    """Write the dataset into OUT: conversations.jsonl, participants.jsonl, design.json, codebook.json/.md."""
    from thoughttrace.collect.bundle import bundle_pieces, write_bundle
    from thoughttrace.collect.study import StudyConfigError, demo_study
    from thoughttrace.collect.versions import load_all

    db = _db(db_url)
    try:
        with db.snapshot() as s:
            try:
                studies = load_all(s.connection())
            except StudyConfigError as exc:
                raise UserFacingError(str(exc)) from None
            current_id = max(studies) if studies else None
            current = studies[current_id] if current_id is not None else demo_study()
            files = write_bundle(bundle_pieces(s, studies, current, current_id, include_prolific=include_prolific,
                                               completed_only=completed_only), out)
    finally:
        db.dispose()
    click.echo(f"wrote {', '.join(f.name for f in files)} to {out}")
