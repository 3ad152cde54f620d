"""What the researcher reads about participants: the searchable list, and the CSV files beside the
JSONL dataset export (participants with quality and timing columns; the event log; the audit log).

One row builder serves the admin page and the CSV, so both always show the same figures.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import queries
from .bundle import completed
from .db import AdminAction, Conversation, Event, Message, Participant, StudyState
from .export import iso
from .quality import FLAGS, quality_flags
from .study import StudyConfig

CSV_FORMAT_VERSION = 1
PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    q: str = ""
    stage: str = ""
    flag: str = ""
    model: str = ""
    page: int = 1


def _minutes(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds() / 60, 2) if a and b else None


def participant_rows(s: Session, study: StudyConfig, f: Filters, *, page_size: int | None = PAGE_SIZE
                     ) -> tuple[list[dict[str, Any]], int]:
    """The participants matching the filters (newest last), one page of them, and how many matched."""
    q = select(Participant)
    if f.q:
        like = f"%{f.q}%"
        q = q.where(or_(Participant.prolific_pid.ilike(like), Participant.public_id.ilike(like),
                        Participant.session_id.ilike(like), Participant.study_id.ilike(like)))
    if f.stage:
        q = q.where(Participant.stage == f.stage)
    if f.model:
        q = q.where(Participant.id.in_(select(Conversation.participant_id).where(Conversation.model_key == f.model)))
    people = list(s.scalars(q.order_by(Participant.id)))
    flags: dict[int, dict[str, int]] | None = None
    if f.flag:  # filtering by a flag needs everyone's flags; otherwise only the page's are computed
        flags = quality_flags(s, study, people)
        people = [p for p in people if flags.get(p.id, {}).get(f.flag)]
    total = len(people)
    if page_size is not None:
        start = (max(f.page, 1) - 1) * page_size
        people = people[start:start + page_size]
    return rows_for(s, study, people, flags), total


def rows_for(s: Session, study: StudyConfig, people: list[Participant],
             flags: dict[int, dict[str, int]] | None = None) -> list[dict[str, Any]]:
    """The list/CSV rows of these participants (their quality flags computed here unless given)."""
    if flags is None:
        flags = quality_flags(s, study, people)
    ids = [p.id for p in people]
    convs: dict[int, list[Conversation]] = {}
    counts: dict[int, int] = {}
    if ids:
        for c in s.scalars(select(Conversation).where(Conversation.participant_id.in_(ids))
                           .order_by(Conversation.task_index)):
            convs.setdefault(c.participant_id, []).append(c)
        counts = dict(s.execute(
            select(Conversation.participant_id, func.count(Message.id))
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Conversation.participant_id.in_(ids)).group_by(Conversation.participant_id)).all())
    rows = []
    for p in people:
        cs = convs.get(p.id, [])
        rows.append({
            "user": f"user{p.id}", "public_id": p.public_id, "prolific_pid": p.prolific_pid,
            "study_id": p.study_id, "session_id": p.session_id, "stage": p.stage, "design_row": p.design_row,
            "completed": completed(p), "study_version": p.study_version, "consent_version": p.consent_version,
            "design_id": p.design_id,
            "models": [c.model_key for c in cs], "messages": counts.get(p.id, 0),
            "conversations": [(c.public_id, c.task_index + 1, c.model_key) for c in cs],
            "created_at": p.created_at, "completed_at": p.completed_at, "withdrawn_at": p.withdrawn_at,
            "minutes_total": _minutes(p.created_at, p.completed_at),
            "minutes_tasks": [_minutes(c.started_at, c.ended_at) for c in cs],
            "quiz_attempts": p.quiz_attempts, "flags": flags.get(p.id, {}),
        })
    return rows


def participants_csv(s: Session, study: StudyConfig) -> str:
    """Every participant with timing and one column per quality flag (counts), for analysis or payment."""
    return "".join(participants_csv_pieces(s, study))


def participants_csv_pieces(s: Session, study: StudyConfig, batch: int = 50) -> Iterator[str]:
    """`participants_csv` in pieces of `batch` participants (keyset-paged), for `reads.snapshot_pieces`."""
    n_tasks = study.tasks_per_participant
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["format_version", "user", "public_id", "prolific_pid", "study_id", "session_id", "stage", "withdrawn",
                "completed", "study_version", "consent_version", "design_id", "design_row", *[f"task{k + 1}_model" for k in range(n_tasks)], "messages", "quiz_attempts",
                "created_at", "completed_at", "minutes_total", *[f"task{k + 1}_minutes" for k in range(n_tasks)],
                "quality_flags", *[f"flag_{f}" for f in FLAGS]])
    last = 0
    while True:
        people = list(s.scalars(select(Participant).where(Participant.id > last).order_by(Participant.id).limit(batch)))
        if not people:
            break
        last = people[-1].id
        _csv_rows(w, rows_for(s, study, people), n_tasks)
        s.expunge_all()
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def _csv_rows(w: Any, rows: list[dict[str, Any]], n_tasks: int) -> None:
    for r in rows:
        models = r["models"] + [""] * (n_tasks - len(r["models"]))
        minutes = r["minutes_tasks"] + [None] * (n_tasks - len(r["minutes_tasks"]))
        w.writerow([CSV_FORMAT_VERSION, r["user"], r["public_id"], r["prolific_pid"] or "", r["study_id"] or "",
                    r["session_id"] or "", r["stage"], int(r["stage"] == "withdrawn"),
                    int(r["completed"]), _blank(r["study_version"]), _blank(r["consent_version"]),
                    r["design_id"] or "", "" if r["design_row"] is None else r["design_row"], *models[:n_tasks], r["messages"],
                    r["quiz_attempts"], iso(r["created_at"]) or "", iso(r["completed_at"]) or "",
                    _blank(r["minutes_total"]), *[_blank(m) for m in minutes[:n_tasks]],
                    ";".join(f"{k}={v}" for k, v in r["flags"].items()), *[r["flags"].get(f, 0) for f in FLAGS]])


def events_csv(s: Session) -> str:
    """The event log (assignments, model errors, quiz attempts, session changes, ends) and the audit log."""
    return "".join(events_csv_pieces(s))


def events_csv_pieces(s: Session, batch: int = 500) -> Iterator[str]:
    """`events_csv` in pieces of `batch` events (keyset-paged), for `reads.snapshot_pieces`."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["format_version", "source", "time", "kind", "user", "public_id", "conversation", "detail"])
    last = 0
    while True:
        q = (select(Event, Participant.public_id, Conversation.public_id)
             .join(Participant, Participant.id == Event.participant_id)
             .join(Conversation, Conversation.id == Event.conversation_id, isouter=True)
             .where(Event.id > last).order_by(Event.id).limit(batch))
        got = s.execute(q).all()
        if not got:
            break
        for e, pub, conv in got:
            w.writerow([CSV_FORMAT_VERSION, "event", iso(e.created_at), e.kind, f"user{e.participant_id}", pub,
                        conv or "", e.detail])
        last = got[-1][0].id
        s.expunge_all()
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    for a in s.scalars(select(AdminAction).order_by(AdminAction.id)):
        w.writerow([CSV_FORMAT_VERSION, "admin", iso(a.created_at), a.action, "", a.participant_public_id or "", "",
                    a.detail])
    yield buf.getvalue()


def audit_log(s: Session, limit: int = 200) -> Sequence[AdminAction]:
    return list(s.scalars(select(AdminAction).order_by(AdminAction.id.desc()).limit(limit)))


def log_admin_action(s: Session, action: str, detail: str, participant: Participant | None = None) -> None:
    s.add(AdminAction(action=action, detail=detail[:4000],
                      participant_public_id=participant.public_id if participant else None,
                      prolific_pid=participant.prolific_pid if participant else None))


def study_state_of(s: Session) -> dict[str, Any]:
    """The study's state for the admin page: open, paused or closed, with the note and when."""
    row = s.get(StudyState, 1)
    if row is None:
        return {"state": "open", "detail": "", "updated_at": None}
    return {"state": row.state, "detail": row.detail, "updated_at": iso(row.updated_at)}


def set_study_state(s: Session, state: str, note: str = "", *, actor: str = "admin") -> str:
    """Pause, close or reopen the study for every worker (audited). Paused and closed refuse new entries
    with their own page; participants already in the study go on to the end."""
    from .flow import STUDY_STATES, FlowError

    if state not in STUDY_STATES:
        raise FlowError(400, f"unknown study state {state!r}; use one of: {', '.join(STUDY_STATES)}")
    before = study_state_of(s)["state"]
    queries.set_study_state(s.connection(), state, note)
    log_admin_action(s, f"study_{state}", f"by {actor}; {before} -> {state}{'; ' + note if note else ''}")
    return before


def _blank(v: float | None) -> str | float:
    return "" if v is None else v
