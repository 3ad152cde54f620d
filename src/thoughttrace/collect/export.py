"""Export the study's conversations to the released ThoughtTrace schema, validated by the dataset core.

Ids follow the release (`user{N}_task{K}_conversation1`); `user_id` is `user{N}` (the row number, never a
Prolific id). Prolific ids are added as extra fields only when the researcher asks (`include_prolific`).
`survey_answers` is a one-element list holding the participant's answers as a mapping. Each assistant
message carries `metadata` with the sampling `seed` it was generated with and its `latency_ms`, so a
study can be audited and an answer replayed. Withdrawn participants have no conversations left.
Each record also names its participant's `study_version`, `design_id` and `design_row`.

The export reads in pieces (`batch` participants at a time, keyset-paged by participant id), so the
caller can hand the event loop back between pieces; read it from `Database.snapshot()`, which on
SQLite is a WAL reader that blocks no participant. `bundle.py` adds the participants file (stage,
completed/withdrawn, consent, design row, screening and survey answers), the design and the codebook.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from thoughttrace.data import FORMAT_VERSION
from thoughttrace.data import Conversation as ConversationRecord

from .db import Conversation, Message, Participant, Thought
from .quality import quality_flags
from .study import StudyConfig

EXPORT_FORMAT_VERSION = FORMAT_VERSION


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat().replace("+00:00", "Z") if ts else None


def conversation_record(p: Participant, conv: Conversation, msgs: list[Message], thoughts: dict[int, list[Thought]],
                        *, include_prolific: bool = False, quality_flags: dict[str, int] | None = None
                        ) -> dict[str, Any]:
    """One conversation as a validated dict in the released field names."""
    user = f"user{p.id}"
    cid = f"{user}_task{conv.task_index + 1}_conversation1"
    out_msgs = []
    for m in msgs:
        notes = [{"content": t.content, "timestamp": iso(t.created_at), "label": t.label} for t in thoughts.get(m.id, [])]
        item: dict[str, Any] = {"id": f"{cid}_m{m.seq}", "timestamp": iso(m.created_at), "type": m.role,
                                "content": m.content}
        item["reasons" if m.role == "user" else "reactions"] = notes
        if m.role == "assistant":
            item["metadata"] = {"seed": m.seed, "latency_ms": m.latency_ms, "model_key": conv.model_key,
                                "finish_reason": m.finish_reason}
        out_msgs.append(item)
    updated = max([conv.updated_at, *(m.created_at for m in msgs),
                   *(t.created_at for ts in thoughts.values() for t in ts)])
    record: dict[str, Any] = {
        "id": cid, "model_name": conv.model_name, "model_provider": conv.model_provider,
        "created_at": iso(conv.started_at), "updated_at": iso(updated),
        "task_summary": conv.task_summary, "task_expectation": conv.task_expectation,
        "survey_answers": [p.survey] if p.survey else None, "user_id": user, "messages": out_msgs,
        "task_statement": conv.task_statement, "model_key": conv.model_key,
        "study_version": p.study_version, "design_id": p.design_id, "design_row": p.design_row,
    }
    if quality_flags is not None:
        record["quality_flags"] = quality_flags  # the participant's flags (see collect/quality.py); {} = none
    if include_prolific:
        record.update(prolific_pid=p.prolific_pid, prolific_study_id=p.study_id, prolific_session_id=p.session_id)
    return ConversationRecord.model_validate(record).to_json_dict()


def participant_pages(s: Session, *, batch: int, completed_only: bool = False) -> Iterator[list[Participant]]:
    """Participants `batch` at a time in id order (keyset paging): memory flat however large the study."""
    last = 0
    while True:
        q = select(Participant).where(Participant.id > last)
        if completed_only:
            q = q.where(Participant.stage == "done")
        people = list(s.scalars(q.order_by(Participant.id).limit(batch)))
        if not people:
            return
        last = people[-1].id
        yield people


def iter_export(s: Session, *, include_prolific: bool = False, completed_only: bool = False,
                batch: int = 50, study: StudyConfig | None = None) -> Iterator[dict[str, Any]]:
    """Every conversation with at least one message, in participant/task order, validated one by one.
    With the study config, each record also carries its participant's `quality_flags`.

    Reads `batch` participants at a time (keyset paging on the participant id): memory and the time
    between two records stay flat however large the study."""
    for people in participant_pages(s, batch=batch, completed_only=completed_only):
        by_id = {p.id: p for p in people}
        convs = list(s.scalars(select(Conversation).where(Conversation.participant_id.in_(list(by_id)))
                               .order_by(Conversation.participant_id, Conversation.task_index)))
        conv_ids = [c.id for c in convs]
        msgs_by_conv: dict[int, list[Message]] = {}
        if conv_ids:
            for m in s.scalars(select(Message).where(Message.conversation_id.in_(conv_ids)).order_by(Message.seq)):
                msgs_by_conv.setdefault(m.conversation_id, []).append(m)
        msg_ids = [m.id for ms in msgs_by_conv.values() for m in ms]
        thoughts: dict[int, list[Thought]] = {}
        if msg_ids:
            for t in s.scalars(select(Thought).where(Thought.message_id.in_(msg_ids)).order_by(Thought.id)):
                thoughts.setdefault(t.message_id, []).append(t)
        flags = quality_flags(s, study, people) if study is not None else {}
        for conv in convs:
            p = by_id[conv.participant_id]
            msgs = msgs_by_conv.get(conv.id, [])
            if msgs:
                yield conversation_record(p, conv, msgs, thoughts, include_prolific=include_prolific,
                                          quality_flags=flags.get(p.id, {}) if study is not None else None)
        s.expunge_all()  # the identity map would hold the whole study by the end (memory, slow GC passes)
