"""`thoughttrace prolific ...`: list, approve, reject and bonus a study's Prolific submissions.

Token from `PROLIFIC_TOKEN`; API URL from `PROLIFIC_API_URL` (default the public API). Every write is a
dry run (the exact request is printed, nothing is sent) unless `--execute` is given. With `--db URL`
every action, dry or not, is written to the study database's audit log (the admin page shows it), and
`approve --completed` picks the submissions (SESSION_ID) of every participant who finished the study.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import click

from .common import UserFacingError


def _client(execute: bool, db_url: str | None) -> tuple[Any, list[Any]]:
    from thoughttrace.collect.prolific import ProlificClient, ProlificError

    actions: list[Any] = []
    try:
        client = ProlificClient.from_env(dry_run=not execute, on_action=actions.append)
    except ProlificError as exc:
        raise UserFacingError(str(exc)) from None
    return client, actions


def _log(db_url: str | None, actions: list[Any]) -> None:
    if not db_url or not actions:
        return
    from thoughttrace.collect.db import Database
    from thoughttrace.collect.migrate import upgrade
    from thoughttrace.collect.researcher import log_admin_action

    db = Database(db_url)
    try:
        upgrade(db.engine)
        with db.session() as s:
            for a in actions:
                log_admin_action(s, f"prolific_{a.action}", json.dumps(
                    {"dry_run": a.dry_run, "method": a.method, "path": a.path, "body": a.body, "status": a.status,
                     "response": a.response, "via": "cli"}, default=str))
    finally:
        db.dispose()


def _run(execute: bool, db_url: str | None, as_json: bool, fn: Any) -> None:
    from thoughttrace.collect.prolific import ProlificError

    client, actions = _client(execute, db_url)
    try:
        result = fn(client)
    except ProlificError as exc:
        _log(db_url, actions)
        raise UserFacingError(str(exc)) from None
    _log(db_url, actions)
    if as_json:
        click.echo(json.dumps({"dry_run": not execute, "result": result}, indent=1, default=str))
        return
    for a in actions:
        state = "DRY RUN (not sent)" if a.dry_run else f"sent -> HTTP {a.status}"
        click.echo(f"{state}: {a.method} {a.path} {json.dumps(a.body) if a.body else ''}".rstrip())
    if not execute:
        click.echo("nothing was sent; add --execute to send these requests", err=True)


_execute = click.option("--execute", is_flag=True, help="really send (default: dry run, prints the request)")
_db = click.option("--db", "db_url", default=None, help="study database: log every action in its audit log")
_json = click.option("--json", "as_json", is_flag=True, help="print the result as JSON")


@click.group("prolific")
def group() -> None:
    """Approve, reject and pay bonuses on Prolific (PROLIFIC_TOKEN; dry run unless --execute)."""


@group.command("submissions")
@click.option("--study", "study_id", required=True, help="Prolific study id (STUDY_ID)")
@click.option("--status", default=None, help="e.g. AWAITING_REVIEW, APPROVED")
@_json
def submissions(study_id: str, status: str | None, as_json: bool) -> None:
    """List a study's submissions (a read: sent even without --execute)."""
    from thoughttrace.collect.prolific import ProlificError

    client, _ = _client(True, None)
    try:
        subs = client.submissions(study_id, status)
    except ProlificError as exc:
        raise UserFacingError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(subs, indent=1))
        return
    for sub in subs:
        click.echo(f"{sub.get('id')}\t{sub.get('participant_id') or sub.get('participant')}\t{sub.get('status')}")
    click.echo(f"{len(subs)} submission(s)", err=True)


def _completed_sessions(db_url: str) -> list[str]:
    from sqlalchemy import select

    from thoughttrace.collect.db import Database, Participant

    db = Database(db_url)
    try:
        with db.session() as s:
            return [x for x in s.scalars(select(Participant.session_id).where(
                Participant.stage == "done", Participant.session_id.is_not(None)).order_by(Participant.id)) if x]
    finally:
        db.dispose()


@group.command("approve")
@click.argument("submission_ids", nargs=-1)
@click.option("--study", "study_id", default=None, help="with several ids: one bulk-approve call for this study")
@click.option("--completed", is_flag=True, help="every participant of --db who finished (their SESSION_ID)")
@_execute
@_db
@_json
def approve(submission_ids: tuple[str, ...], study_id: str | None, completed: bool, execute: bool,
            db_url: str | None, as_json: bool) -> None:
    """Approve submissions (SESSION_ID values)."""
    ids = list(submission_ids)
    if completed:
        if not db_url:
            raise UserFacingError("--completed reads the study database: add --db URL")
        ids += _completed_sessions(db_url)
    if not ids:
        raise UserFacingError("no submissions to approve: give SUBMISSION_IDS or --completed --db URL")
    if study_id and len(ids) > 1:
        _run(execute, db_url, as_json, lambda c: c.bulk_approve(study_id, ids))
    else:
        _run(execute, db_url, as_json, lambda c: [c.approve(i) for i in ids])


@group.command("reject")
@click.argument("submission_id")
@click.option("--category", required=True, help="TOO_QUICKLY, TOO_SLOWLY, FAILED_INSTRUCTIONS, FAILED_CHECK, "
              "LOW_EFFORT, MALINGERING, NO_CODE, BAD_CODE, NO_DATA, UNSUPP_DEVICE, INCOMP_LONGITUDINAL, OTHER")
@click.option("--message", required=True, help="shown to the participant (at least 100 characters)")
@_execute
@_db
@_json
def reject(submission_id: str, category: str, message: str, execute: bool, db_url: str | None,
           as_json: bool) -> None:
    """Reject one submission with a documented category and a message."""
    _run(execute, db_url, as_json, lambda c: c.reject(submission_id, message, category))


@group.command("bonus")
@click.option("--study", "study_id", required=True, help="Prolific study id")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="file of PARTICIPANT_ID,AMOUNT lines")
@click.option("--pay", "pairs", nargs=2, multiple=True, metavar="PARTICIPANT_ID AMOUNT", help="one bonus")
@_execute
@_db
@_json
def bonus(study_id: str, csv_path: Path | None, pairs: tuple[tuple[str, str], ...], execute: bool,
          db_url: str | None, as_json: bool) -> None:
    """Set up and pay bonuses (amounts in the study currency, e.g. 1.50)."""
    rows = [(a, b) for a, b in pairs]
    if csv_path:
        with csv_path.open(encoding="utf-8", newline="") as fh:
            for n, line in enumerate(csv.reader(fh), 1):
                if not line or not line[0].strip() or line[0].strip().lower() == "participant_id":
                    continue
                if len(line) != 2:
                    raise UserFacingError(f"{csv_path}: line {n}: write PARTICIPANT_ID,AMOUNT (got {line!r})")
                rows.append((line[0].strip(), line[1].strip()))
    if not rows:
        raise UserFacingError("no bonuses: give --pay PARTICIPANT_ID AMOUNT or --csv FILE")
    _run(execute, db_url, as_json, lambda c: c.bonus(study_id, rows))
