"""Export the study's conversations to the released ThoughtTrace schema, validated by the dataset core.

Ids follow the release (`user{N}_task{K}_conversation1`); `user_id` is `user{N}` (the row number, never a
Prolific id). Prolific ids are added as extra fields only when the researcher asks (`include_prolific`).
`survey_answers` is a one-element list holding the participant's answers as a mapping. Each assistant
message carries `metadata` with the sampling `seed` it was generated with and its `latency_ms`, so a
study can be audited and an answer replayed. Withdrawn participants have no conversations left.
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
            item["metadata"] = {"seed": m.seed, "latency_ms": m.latency_ms, "model_key": conv.model_key}
        out_msgs.append(item)
    updated = max([conv.updated_at, *(m.created_at for m in msgs),
                   *(t.created_at for ts in thoughts.values() for t in ts)])
    record: dict[str, Any] = {
        "id": cid, "model_name": conv.model_name, "model_provider": conv.model_provider,
        "created_at": iso(conv.started_at), "updated_at": iso(updated),
        "task_summary": conv.task_summary, "task_expectation": conv.task_expectation,
        "survey_answers": [p.survey] if p.survey else None, "user_id": user, "messages": out_msgs,
        "task_statement": conv.task_statement, "model_key": conv.model_key,
    }
    if quality_flags is not None:
        record["quality_flags"] = quality_flags  # the participant's flags (see collect/quality.py); {} = none
    if include_prolific:
        record.update(prolific_pid=p.prolific_pid, prolific_study_id=p.study_id, prolific_session_id=p.session_id)
    return ConversationRecord.model_validate(record).to_json_dict()


def iter_export(s: Session, *, include_prolific: bool = False, completed_only: bool = False,
                batch: int = 200, study: StudyConfig | None = None) -> Iterator[dict[str, Any]]:
    """Every conversation with at least one message, in participant/task order, validated one by one.
    With the study config, each record also carries its participant's `quality_flags`."""
    q = select(Conversation, Participant).join(Participant, Participant.id == Conversation.participant_id)
    if completed_only:
        q = q.where(Participant.stage == "done")
    q = q.order_by(Participant.id, Conversation.task_index)
    rows = s.execute(q).all()
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        conv_ids = [c.id for c, _ in chunk]
        msgs_by_conv: dict[int, list[Message]] = {}
        for m in s.scalars(select(Message).where(Message.conversation_id.in_(conv_ids)).order_by(Message.seq)):
            msgs_by_conv.setdefault(m.conversation_id, []).append(m)
        msg_ids = [m.id for ms in msgs_by_conv.values() for m in ms]
        thoughts: dict[int, list[Thought]] = {}
        if msg_ids:
            for t in s.scalars(select(Thought).where(Thought.message_id.in_(msg_ids)).order_by(Thought.id)):
                thoughts.setdefault(t.message_id, []).append(t)
        flags = quality_flags(s, study, {p.id: p for _c, p in chunk}.values()) if study is not None else {}
        for conv, p in chunk:
            msgs = msgs_by_conv.get(conv.id, [])
            if msgs:
                yield conversation_record(p, conv, msgs, thoughts, include_prolific=include_prolific,
                                          quality_flags=flags.get(p.id, {}) if study is not None else None)
