"""`thoughttrace db backup|restore|verify`: backups of a study database you have actually restored.

The database URL comes from `--db` or THOUGHTTRACE_DB_URL (the server's own variable, so a systemd
timer with the server's EnvironmentFile backs up the database the server uses).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from .common import UserFacingError


def _db_url(db_url: str | None) -> str:
    url = db_url or os.environ.get("THOUGHTTRACE_DB_URL")
    if not url:
        raise UserFacingError("no database given: pass --db URL or set THOUGHTTRACE_DB_URL")
    return url


def _study_version(study_path: str | None) -> str | None:
    from thoughttrace.collect.study import StudyConfigError, demo_study, load_study
    from thoughttrace.collect.study_version import study_version

    path = study_path or os.environ.get("THOUGHTTRACE_STUDY")
    try:
        return study_version(load_study(path) if path else demo_study())
    except StudyConfigError as exc:
        raise UserFacingError(str(exc)) from None


def _fail(exc: Exception) -> UserFacingError:
    return UserFacingError(str(exc))


@click.group("db")
def group() -> None:
    """Back up, restore and verify the study database (SQLite or PostgreSQL)."""


@group.command("backup")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "db_url", default=None, help="database URL (default THOUGHTTRACE_DB_URL)")
@click.option("--study", "study_path", default=None, help="study config, for the manifest's study version "
              "(default THOUGHTTRACE_STUDY, else the demo study)")
@click.option("--json", "as_json", is_flag=True, help="print the manifest as JSON")
def backup_command(out: Path, db_url: str | None, study_path: str | None, as_json: bool) -> None:
    """Copy the database to OUT (safe while the server runs) and write OUT.manifest.json beside it."""
    from thoughttrace.collect.backup import BackupError, backup, manifest_path

    try:
        manifest = backup(_db_url(db_url), out, study_version=_study_version(study_path))
    except BackupError as exc:
        raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps(manifest))
        return
    c = manifest["counts"]
    click.echo(f"backup {out} ({manifest['engine']}, {manifest['size_bytes']:,} bytes, {manifest['backup_seconds']:.2f} s): "
               f"{c.get('participants', 0)} participants, {c.get('messages', 0)} messages, {c.get('thoughts', 0)} thoughts; "
               f"study {manifest['study_version']}, schema {manifest['schema_revision']}")
    click.echo(f"manifest {manifest_path(out)} (sha256 {manifest['sha256'][:16]}...)")


@group.command("restore")
@click.argument("dump", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "db_url", required=True, help="the EMPTY database to restore into")
def restore_command(dump: Path, db_url: str) -> None:
    """Restore a backup into an empty database; the counts are checked against the manifest."""
    from thoughttrace.collect.backup import BackupError, restore

    try:
        counts = restore(dump, db_url)
    except BackupError as exc:
        raise _fail(exc) from None
    click.echo(f"restored {dump} : {_counts_line(counts)}")


@group.command("verify")
@click.argument("dump", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--db", "db_url", default=None, help="PostgreSQL backups: a server to create the scratch database "
              "on (default THOUGHTTRACE_DB_URL)")
@click.option("--json", "as_json", is_flag=True)
def verify_command(dump: Path, db_url: str | None, as_json: bool) -> None:
    """Restore DUMP into a scratch database and compare every table's row count with the manifest (exit 1 if not)."""
    from thoughttrace.collect.backup import BackupError, verify

    try:
        report = verify(dump, server_url=db_url)
    except BackupError as exc:
        raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps({"format_version": 1, "ok": report.ok, "problems": report.problems,
                               "counts": report.restored_counts, "restore_seconds": report.restore_seconds}))
    elif report.ok:
        click.echo(f"OK {dump}: restored in {report.restore_seconds:.2f} s, every table's count matches "
                   f"({_counts_line(report.restored_counts)})")
    if not report.ok:
        raise UserFacingError(f"{dump} does NOT restore as its manifest says: " + "; ".join(report.problems))


def _counts_line(counts: dict[str, Any]) -> str:
    return ", ".join(f"{n} {t}" for t, n in counts.items())


@group.command("upgrade")
@click.option("--db", "db_url", default=None, help="database URL (default THOUGHTTRACE_DB_URL)")
def upgrade_command(db_url: str | None) -> None:
    """Bring the database's schema to this version's newest migration (back it up first)."""
    from thoughttrace.collect.db import make_engine
    from thoughttrace.collect.migrate import current_revision, upgrade

    engine = make_engine(_db_url(db_url))
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"schema {before or 'empty'} -> {after}" if before != after else f"schema already at {after}")
