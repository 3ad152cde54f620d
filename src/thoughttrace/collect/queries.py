"""The study flow's SQL in SQLAlchemy Core: one definition of each query, typed rows, no ORM objects.

Why Core: a participant request is a few one-row reads and writes, and loading ORM objects (identity
map, instance state, the unit-of-work flush at commit) cost most of its server CPU; when participants
click without pause, latency is CPU per request times participants per core. Here each read is one
compiled statement whose row becomes a small dataclass, and each write is one explicit INSERT or UPDATE
(Core applies the tables' Python defaults and `onupdate`, so `public_id`, `created_at` and `updated_at`
are filled as before). The ORM classes in `db.py` stay the schema and serve the researcher's pages.

Statements are built once, at import: building one (coercing operands, its cache key) costs more CPU
than running it on SQLite. Values always come in as bound parameters. An UPDATE statement here has no
SET clause of its own: the columns set are the keys of the parameters it runs with.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from .db import Conversation, Event, Message, Participant, StudyState, Thought, new_public_id, utcnow

PARTICIPANTS: Table = Participant.__table__  # type: ignore[assignment]
CONVERSATIONS: Table = Conversation.__table__  # type: ignore[assignment]
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
THOUGHTS: Table = Thought.__table__  # type: ignore[assignment]
EVENTS: Table = Event.__table__  # type: ignore[assignment]
STATE: Table = StudyState.__table__  # type: ignore[assignment]
#: stages whose participants hold no place in the design (their row is free again)
NOT_COUNTED = ("withdrawn", "screened_out")


@dataclass(slots=True)
class ParticipantRow:
    """What the participant side reads of a participant (not the survey/screening answers it writes)."""

    id: int
    public_id: str
    prolific_pid: str | None
    study_id: str | None
    session_id: str | None
    stage: str
    task_index: int
    quiz_attempts: int
    design_row: int | None
    created_at: datetime
    study_version: int | None = None


@dataclass(slots=True)
class ConversationRow:
    id: int
    public_id: str
    participant_id: int
    task_index: int
    task_statement: str
    model_key: str
    deadline_at: datetime
    ended_at: datetime | None


@dataclass(slots=True)
class MessageRow:
    id: int
    public_id: str
    conversation_id: int
    seq: int
    role: str
    content: str
    client_key: str | None
    created_at: datetime
    #: assistant answers: stop, length or dropped (the stream ended without its end marker)
    finish_reason: str | None = None


@dataclass(slots=True)
class ThoughtRow:
    id: int
    message_id: int
    kind: str
    content: str
    label: str | None
    client_key: str | None


def _columns(table: Table, row_type: type) -> list[Any]:
    """The table's columns in the order of the row dataclass's fields (rows are built positionally)."""
    return [table.c[f.name] for f in fields(row_type)]


_P, _C, _M, _T = (_columns(PARTICIPANTS, ParticipantRow), _columns(CONVERSATIONS, ConversationRow),
                  _columns(MESSAGES, MessageRow), _columns(THOUGHTS, ThoughtRow))

_PARTICIPANT_BY_PUBLIC_ID = select(*_P).where(PARTICIPANTS.c.public_id == bindparam("public_id"))
_PARTICIPANT_BY_PID = select(*_P).where(PARTICIPANTS.c.prolific_pid == bindparam("pid"))
_INSERT_PARTICIPANT = insert(PARTICIPANTS)
_UPDATE_PARTICIPANT = update(PARTICIPANTS).where(PARTICIPANTS.c.id == bindparam("row_id"))
_DESIGN_ROW_COUNTS = (
    select(PARTICIPANTS.c.design_id, PARTICIPANTS.c.design_row, func.count())
    .where(PARTICIPANTS.c.design_row.is_not(None), PARTICIPANTS.c.stage.not_in(NOT_COUNTED),
           PARTICIPANTS.c.id != bindparam("except_id"))
    .group_by(PARTICIPANTS.c.design_id, PARTICIPANTS.c.design_row))
_STUDY_STATE = select(STATE.c.state, STATE.c.detail, STATE.c.updated_at).where(STATE.c.id == 1)

# a conversation is only ever looked up together with its owner (someone else's reads as absent), in the
# same statement as the participant: one round trip for the chat routes' checks, not two
_PARTICIPANT_WITH_CONVERSATION = (
    select(*_P, *_C)
    .select_from(PARTICIPANTS.outerjoin(CONVERSATIONS, and_(
        CONVERSATIONS.c.participant_id == PARTICIPANTS.c.id,
        CONVERSATIONS.c.public_id == bindparam("conversation_public_id"))))
    .where(PARTICIPANTS.c.public_id == bindparam("public_id")))
_CONVERSATION_OF_TASK = select(*_C).where(CONVERSATIONS.c.participant_id == bindparam("participant_id"),
                                          CONVERSATIONS.c.task_index == bindparam("task_index"))
_PARTICIPANT_OF_CONVERSATION = select(CONVERSATIONS.c.participant_id).where(
    CONVERSATIONS.c.id == bindparam("conversation_id"))
_INSERT_CONVERSATION = insert(CONVERSATIONS)
_UPDATE_CONVERSATION = update(CONVERSATIONS).where(CONVERSATIONS.c.id == bindparam("row_id"))

_MESSAGES_OF = select(*_M).where(MESSAGES.c.conversation_id == bindparam("conversation_id")).order_by(MESSAGES.c.seq)
_MESSAGE_AT = select(*_M).where(MESSAGES.c.conversation_id == bindparam("conversation_id"),
                                MESSAGES.c.seq == bindparam("seq"))
_MESSAGE_IN = select(*_M).where(MESSAGES.c.public_id == bindparam("public_id"),
                                MESSAGES.c.conversation_id == bindparam("conversation_id"))
_INSERT_MESSAGE = insert(MESSAGES)

_THOUGHTS_OF = select(*_T).where(THOUGHTS.c.message_id.in_(bindparam("message_ids", expanding=True)))
_THOUGHT_OF = select(*_T).where(THOUGHTS.c.message_id == bindparam("message_id"), THOUGHTS.c.kind == bindparam("kind"))
_INSERT_THOUGHT = insert(THOUGHTS)

_INSERT_EVENT = insert(EVENTS)
_ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


# ------------------------------------------------------------------------------------------ participants
def participant_by_public_id(c: Connection, public_id: str) -> ParticipantRow | None:
    row = c.execute(_PARTICIPANT_BY_PUBLIC_ID, {"public_id": public_id}).first()
    return None if row is None else ParticipantRow(*row)


def participant_with_conversation(c: Connection, public_id: str, conversation_public_id: str
                                  ) -> tuple[ParticipantRow | None, ConversationRow | None]:
    """The participant, and their conversation with this public id (None when it is not theirs)."""
    row = c.execute(_PARTICIPANT_WITH_CONVERSATION,
                    {"public_id": public_id, "conversation_public_id": conversation_public_id}).first()
    if row is None:
        return None, None
    n = len(_P)
    return ParticipantRow(*row[:n]), (None if row[n] is None else ConversationRow(*row[n:]))


def participant_by_prolific_pid(c: Connection, pid: str) -> ParticipantRow | None:
    row = c.execute(_PARTICIPANT_BY_PID, {"pid": pid}).first()
    return None if row is None else ParticipantRow(*row)


def insert_participant(c: Connection, *, prolific_pid: str | None, study_id: str | None,
                       session_id: str | None, study_version: int | None = None) -> ParticipantRow:
    """A new participant at the consent stage, under the study configuration version `study_version`."""
    now = utcnow()
    p = ParticipantRow(id=0, public_id=new_public_id(), prolific_pid=prolific_pid, study_id=study_id,
                       session_id=session_id, stage="consent", task_index=0, quiz_attempts=0, design_row=None,
                       created_at=now, study_version=study_version)
    values = {f.name: getattr(p, f.name) for f in fields(ParticipantRow) if f.name != "id"}
    result = c.execute(_INSERT_PARTICIPANT, {**values, "updated_at": now})
    p.id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return p


def _update_row(c: Connection, statement: Any, row: Any, values: dict[str, Any]) -> None:
    """Run `statement`, the UPDATE of one row by id, with these columns (the table's `updated_at` is set by its
    onupdate), then set the same fields of the in-memory `row`, so the caller's copy stays what the database holds."""
    c.execute(statement, {"row_id": row.id, **values})
    for name, value in values.items():
        if hasattr(row, name):
            setattr(row, name, value)


def update_participant(c: Connection, p: ParticipantRow, **values: Any) -> None:
    """Set these columns of the participant's row (and `updated_at`), and the same fields of `p`."""
    _update_row(c, _UPDATE_PARTICIPANT, p, values)


def design_row_counts(c: Connection, except_participant_id: int) -> dict[tuple[str | None, int], int]:
    """Participants per (design id, design row), leaving one participant out; withdrawn and screened-out
    participants free their place."""
    return {(d, int(r)): int(n) for d, r, n in c.execute(_DESIGN_ROW_COUNTS, {"except_id": except_participant_id})}


def study_state(c: Connection) -> tuple[str, str]:
    """(state, detail): 'open' unless a researcher paused or closed the study."""
    row = c.execute(_STUDY_STATE).first()
    return ("open", "") if row is None else (str(row[0]), str(row[1]))


def set_study_state(c: Connection, state: str, detail: str = "") -> None:
    """Store the study's state (one row, id 1) for every worker to read."""
    now = utcnow()
    if c.execute(_STUDY_STATE).first() is None:
        c.execute(insert(STATE), {"id": 1, "state": state, "detail": detail, "updated_at": now})
    else:
        c.execute(update(STATE).where(STATE.c.id == 1), {"state": state, "detail": detail, "updated_at": now})


def advisory_xact_lock(c: Connection, key: int) -> None:
    """PostgreSQL: wait for a transaction-scoped advisory lock (SQLite needs none: BEGIN IMMEDIATE)."""
    if c.dialect.name == "postgresql":
        c.execute(_ADVISORY_XACT_LOCK, {"k": key})


# ----------------------------------------------------------------------------------------- conversations
def conversation_of_task(c: Connection, participant_id: int, task_index: int) -> ConversationRow | None:
    row = c.execute(_CONVERSATION_OF_TASK, {"participant_id": participant_id, "task_index": task_index}).first()
    return None if row is None else ConversationRow(*row)


def participant_of_conversation(c: Connection, conversation_id: int) -> int:
    return int(c.execute(_PARTICIPANT_OF_CONVERSATION, {"conversation_id": conversation_id}).scalar_one())


def insert_conversation(c: Connection, *, participant_id: int, task_index: int, task_statement: str, model_key: str,
                        model_name: str, model_provider: str, model_spec: str, started_at: datetime,
                        deadline_at: datetime) -> ConversationRow:
    conv = ConversationRow(id=0, public_id=new_public_id(), participant_id=participant_id, task_index=task_index,
                           task_statement=task_statement, model_key=model_key, deadline_at=deadline_at, ended_at=None)
    now = utcnow()
    result = c.execute(_INSERT_CONVERSATION, {
        "public_id": conv.public_id, "participant_id": participant_id, "task_index": task_index,
        "task_statement": task_statement, "model_key": model_key, "model_name": model_name,
        "model_provider": model_provider, "model_spec": model_spec, "started_at": started_at,
        "deadline_at": deadline_at, "created_at": now, "updated_at": now})
    conv.id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return conv


def update_conversation(c: Connection, conv: ConversationRow, **values: Any) -> None:
    """Set these columns of the conversation's row (and `updated_at`), and the same fields of `conv`."""
    _update_row(c, _UPDATE_CONVERSATION, conv, values)


# ---------------------------------------------------------------------------------------------- messages
def messages_of(c: Connection, conversation_id: int) -> list[MessageRow]:
    """A conversation's messages in order."""
    return [MessageRow(*r) for r in c.execute(_MESSAGES_OF, {"conversation_id": conversation_id})]


def message_at(c: Connection, conversation_id: int, seq: int) -> MessageRow | None:
    row = c.execute(_MESSAGE_AT, {"conversation_id": conversation_id, "seq": seq}).first()
    return None if row is None else MessageRow(*row)


def message_in(c: Connection, conversation_id: int, public_id: str) -> MessageRow | None:
    """The message with this public id if it belongs to this conversation (None otherwise)."""
    row = c.execute(_MESSAGE_IN, {"conversation_id": conversation_id, "public_id": public_id}).first()
    return None if row is None else MessageRow(*row)


def insert_message(c: Connection, *, conversation_id: int, seq: int, role: str, content: str,
                   client_key: str | None = None, seed: int | None = None,
                   latency_ms: int | None = None, finish_reason: str | None = None) -> MessageRow:
    """Store a message (IntegrityError when its seq or client key is taken: a concurrent writer won)."""
    m = MessageRow(id=0, public_id=new_public_id(), conversation_id=conversation_id, seq=seq, role=role,
                   content=content, client_key=client_key, created_at=utcnow(), finish_reason=finish_reason)
    result = c.execute(_INSERT_MESSAGE, {
        "public_id": m.public_id, "conversation_id": conversation_id, "seq": seq, "role": role, "content": content,
        "client_key": client_key, "seed": seed, "latency_ms": latency_ms, "finish_reason": finish_reason,
        "created_at": m.created_at})
    m.id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return m


_DELETE_MESSAGE = delete(MESSAGES).where(MESSAGES.c.id == bindparam("row_id"))


def delete_message(c: Connection, message_id: int) -> None:
    """Remove one message (an answer cut off before its end marker, being answered again)."""
    c.execute(_DELETE_MESSAGE, {"row_id": message_id})


# ---------------------------------------------------------------------------------------------- thoughts
def thoughts_of(c: Connection, message_ids: list[int]) -> dict[int, ThoughtRow]:
    """The notes on these messages, by message id (a message has at most one: its reason or reaction)."""
    if not message_ids:
        return {}
    return {t.message_id: t for t in (ThoughtRow(*r) for r in c.execute(_THOUGHTS_OF, {"message_ids": message_ids}))}


def thought_of(c: Connection, message_id: int, kind: str) -> ThoughtRow | None:
    row = c.execute(_THOUGHT_OF, {"message_id": message_id, "kind": kind}).first()
    return None if row is None else ThoughtRow(*row)


def insert_thought(c: Connection, *, message_id: int, kind: str, content: str, label: str | None,
                   client_key: str | None, typing_ms: int | None, keystrokes: int | None) -> ThoughtRow:
    t = ThoughtRow(id=0, message_id=message_id, kind=kind, content=content, label=label, client_key=client_key)
    result = c.execute(_INSERT_THOUGHT, {
        "message_id": message_id, "kind": kind, "content": content, "label": label, "client_key": client_key,
        "typing_ms": typing_ms, "keystrokes": keystrokes, "created_at": utcnow()})
    t.id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return t


# ------------------------------------------------------------------------------------------------ events
def insert_event(c: Connection, participant_id: int, kind: str, detail: str = "",
                 conversation_id: int | None = None) -> None:
    """An audit line (assignment, model error, quiz attempt...); the detail is cut at 2,000 characters."""
    c.execute(_INSERT_EVENT, {"participant_id": participant_id, "conversation_id": conversation_id, "kind": kind,
                              "detail": detail[:2000], "created_at": utcnow()})
