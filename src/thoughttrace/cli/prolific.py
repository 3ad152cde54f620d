"""`thoughttrace prolific ...`: list, approve, reject and bonus a study's Prolific submissions.

Token from `PROLIFIC_TOKEN`; API URL from `PROLIFIC_API_URL` (default the public API). Every write is a
dry run (the exact request is printed, nothing is sent) unless `--execute` is given; `--execute` needs
`--db URL`, whose payment ledger (`collect/payments.py`) records each action before it is sent, so a second
run sends nothing twice. Every action, dry or not, is also written to the study database's audit log
(the admin page shows it), and `approve --completed` picks the submissions (SESSION_ID) of every
participant who finished the study.
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
    from sqlalchemy import and_, or_, select

    from thoughttrace.collect.db import Database, Participant

    db = Database(db_url)
    try:
        with db.session() as s:
            # someone who finished and withdrew afterwards did the work: they are approved (paid) too
            finished = or_(Participant.stage == "done",
                           and_(Participant.stage == "withdrawn", Participant.withdrawn_from_stage == "done"))
            return [x for x in s.scalars(select(Participant.session_id).where(
                finished, Participant.session_id.is_not(None)).order_by(Participant.id)) if x]
    finally:
        db.dispose()


def _ledger_run(execute: bool, db_url: str | None, as_json: bool, fn: Any) -> None:
    """Run a ledger operation (`fn(client, ledger)`): the audit log as before, then one line per key."""
    from thoughttrace.collect.payments import Ledger
    from thoughttrace.collect.prolific import ProlificError

    client, actions = _client(execute, db_url)
    db = None
    if db_url:
        from thoughttrace.collect.db import Database
        from thoughttrace.collect.migrate import upgrade

        db = Database(db_url)
        upgrade(db.engine)
    try:
        try:
            report = fn(client, Ledger(db) if db is not None else None)
        except ProlificError as exc:
            _log(db_url, actions)
            raise UserFacingError(str(exc)) from None
        _log(db_url, actions)
    finally:
        if db is not None:
            db.dispose()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        for a in actions:
            state = "DRY RUN (not sent)" if a.dry_run else f"sent -> HTTP {a.status}"
            click.echo(f"{state}: {a.method} {a.path} {json.dumps(a.body) if a.body else ''}".rstrip())
        for line in report.lines():
            click.echo(line)
        if not execute and not report.sent_nothing:
            click.echo("nothing was sent; add --execute to send these requests", err=True)
    if report.failed:
        raise UserFacingError(f"{len(report.failed)} action(s) of this run were not confirmed by Prolific (see above)")


@group.command("approve")
@click.argument("submission_ids", nargs=-1)
@click.option("--study", "study_id", default=None, help="with several ids: one bulk-approve call for this study")
@click.option("--completed", is_flag=True, help="every participant of --db who finished (their SESSION_ID)")
@_execute
@_db
@_json
def approve(submission_ids: tuple[str, ...], study_id: str | None, completed: bool, execute: bool,
            db_url: str | None, as_json: bool) -> None:
    """Approve submissions (SESSION_ID values), each once: the ledger in --db skips those already approved."""
    from thoughttrace.collect.payments import review

    ids = list(submission_ids)
    if completed:
        if not db_url:
            raise UserFacingError("--completed reads the study database: add --db URL")
        finished = _completed_sessions(db_url)
        if not finished and not ids:
            raise UserFacingError(f"nobody in {db_url} has finished the study yet (0 completed participants with a "
                                  "SESSION_ID): nothing to approve; run it again once participants finish, or "
                                  "give SUBMISSION_IDS")
        ids += [i for i in finished if i not in ids]
    if not ids:
        raise UserFacingError("no submissions to approve: give SUBMISSION_IDS or --completed --db URL")
    _ledger_run(execute, db_url, as_json, lambda c, ledger: review(c, ledger, "approve", ids, bulk_study_id=study_id))


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
    """Reject one submission with a documented category and a message (once: see the ledger)."""
    from thoughttrace.collect.payments import review

    _ledger_run(execute, db_url, as_json, lambda c, ledger: review(c, ledger, "reject", [submission_id],
                                                                    message=message, category=category))


@group.command("bonus")
@click.option("--study", "study_id", required=True, help="Prolific study id")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="file of PARTICIPANT_ID,AMOUNT lines")
@click.option("--pay", "pairs", nargs=2, multiple=True, metavar="PARTICIPANT_ID AMOUNT", help="one bonus")
@click.option("--label", default="bonus", show_default=True,
              help="names this bonus round: one bonus per participant and label (a second round needs a new label)")
@click.option("--max-total", "max_total", default=None,
              help="cap on this run's new bonuses (default PROLIFIC_BONUS_RUN_CAP or 200.00)")
@click.option("--study-cap", "study_cap", default=None,
              help="cap on all bonuses of the study in the ledger (default PROLIFIC_BONUS_STUDY_CAP or 1000.00)")
@_execute
@_db
@_json
def bonus(study_id: str, csv_path: Path | None, pairs: tuple[tuple[str, str], ...], label: str,
          max_total: str | None, study_cap: str | None, execute: bool, db_url: str | None, as_json: bool) -> None:
    """Set up and pay bonuses (amounts in the study currency, e.g. 1.50), each participant once per label."""
    from thoughttrace.collect.payments import PaymentRefused, parse_amount_cap, pay_bonuses

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
    try:
        run_cap = parse_amount_cap(max_total) if max_total else None
        cap = parse_amount_cap(study_cap) if study_cap else None
    except PaymentRefused as exc:
        raise UserFacingError(str(exc)) from None
    _ledger_run(execute, db_url, as_json, lambda c, ledger: pay_bonuses(c, ledger, study_id, rows, label=label,
                                                                         run_cap=run_cap, study_cap=cap))
