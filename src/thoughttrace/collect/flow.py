"""The study flow as plain functions on a database session: no HTTP here, so every rule is testable.

Stages, in order: consent -> tutorial (with the quiz) -> task (state it) -> chat -> post_task
(summary, expectation) -> back to task or on to survey -> done. Each function checks that the
participant is at the right stage and that what they send is acceptable, and raises `FlowError`
(with the HTTP status to answer) otherwise, before anything is written: nothing is stored half-way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from thoughttrace.llm.types import ChatMessage

from .db import Conversation, Event, Message, Participant, Thought, utcnow
from .study import StudyConfig

STAGES = ("consent", "tutorial", "task", "chat", "post_task", "survey", "done")
#: grace for a message sent just as the timer ran out (network, slow typing)
TIMER_GRACE = timedelta(seconds=5)
_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")
SURVEY_TEXT_CHARS = 200


class FlowError(Exception):
    """A request the flow refuses; `status` is the HTTP status, the message tells the participant why."""

    def __init__(self, status: int, message: str, redirect: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.redirect = redirect


# ---------------------------------------------------------------------------------------------- checks
def clean_text(value: Any, what: str, max_chars: int, *, required: bool = True) -> str:
    """Strip; refuse empty (when required), oversize and non-text. Stored raw: escaping is the page's job."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FlowError(422, f"{what} must be text")
    text = value.replace("\r\n", "\n").strip()
    if "\x00" in text:
        raise FlowError(422, f"{what} contains a NUL character")
    if required and not text:
        raise FlowError(422, f"{what} is empty; please write something")
    if len(text) > max_chars:
        raise FlowError(413, f"{what} is too long ({len(text)} characters; at most {max_chars})")
    return text


def check_external_id(value: str | None, what: str) -> str | None:
    if value in (None, ""):
        return None
    if not _ID_RE.match(value):
        raise FlowError(400, f"{what} is not a valid id (letters, digits, '_' or '-', at most 64)")
    return value


def check_client_key(value: Any) -> str:
    if not isinstance(value, str) or not _KEY_RE.match(value):
        raise FlowError(422, "idempotency_key must be 8-64 letters, digits, '_' or '-' (one new key per message)")
    return value


def check_label(value: Any, allowed: Sequence[str], mode: str, what: str) -> str | None:
    if mode == "off":
        return None
    if value in (None, ""):
        if mode == "required":
            raise FlowError(422, f"please choose a type for your {what}")
        return None
    if value not in allowed:
        raise FlowError(422, f"unknown {what} type {value!r}; choose one of: {', '.join(allowed)}")
    return str(value)


def require_stage(p: Participant, *stages: str) -> None:
    if p.stage not in stages:
        raise FlowError(409, f"this step is not open now (you are at '{p.stage}')", redirect="/next")


# ----------------------------------------------------------------------------------------- participants
def find_or_create_participant(
    s: Session, prolific_pid: str | None, study_id: str | None, session_id: str | None
) -> Participant:
    """Prolific entries resume by (PROLIFIC_PID, SESSION_ID): the pair is secret to that submission."""
    prolific_pid = check_external_id(prolific_pid, "PROLIFIC_PID")
    study_id = check_external_id(study_id, "STUDY_ID")
    session_id = check_external_id(session_id, "SESSION_ID")
    if prolific_pid and session_id:
        existing = s.scalars(
            select(Participant).where(Participant.prolific_pid == prolific_pid, Participant.session_id == session_id)
        ).first()
        if existing is not None:
            return existing
    p = Participant(prolific_pid=prolific_pid, study_id=study_id, session_id=session_id, stage="consent",
                    task_index=0, quiz_attempts=0)
    s.add(p)
    s.flush()
    return p


def participant_by_public_id(s: Session, public_id: str) -> Participant | None:
    return s.scalars(select(Participant).where(Participant.public_id == public_id)).first()


def log_event(s: Session, p: Participant, kind: str, detail: str = "", conv: Conversation | None = None) -> None:
    s.add(Event(participant_id=p.id, conversation_id=conv.id if conv else None, kind=kind, detail=detail[:2000]))


def give_consent(s: Session, p: Participant) -> None:
    require_stage(p, "consent")
    p.consented_at = utcnow()
    p.stage = "tutorial"


def submit_quiz(s: Session, p: Participant, study: StudyConfig, answers: Mapping[int, Any]) -> list[int]:
    """Return the indices of wrong answers; an empty list passes the participant on to their first task."""
    require_stage(p, "tutorial")
    wrong = []
    for i, q in enumerate(study.quiz):
        given = answers.get(i)
        try:
            ok = given is not None and int(given) == q.answer
        except (TypeError, ValueError):
            ok = False
        if not ok:
            wrong.append(i)
    p.quiz_attempts += 1
    log_event(s, p, "quiz", f"attempt {p.quiz_attempts}: {len(wrong)} wrong")
    if not wrong:
        p.quiz_passed_at = utcnow()
        p.stage = "task"
    return wrong


# ------------------------------------------------------------------------------------------------ tasks
def assign_model(s: Session, study: StudyConfig) -> str:
    """Balanced assignment: the pool model with the fewest conversations so far (ties: config order)."""
    counts = dict(s.execute(select(Conversation.model_key, func.count()).group_by(Conversation.model_key)).all())
    return min((m.key for m in study.models), key=lambda k: (counts.get(k, 0), [m.key for m in study.models].index(k)))


def start_task(s: Session, p: Participant, study: StudyConfig, statement: Any) -> Conversation:
    require_stage(p, "task")
    text = clean_text(statement, "the task description", study.max_message_chars)
    key = assign_model(s, study)
    entry = study.model_entry(key)
    now = utcnow()
    conv = Conversation(
        participant_id=p.id, task_index=p.task_index, task_statement=text, model_key=key,
        model_name=entry.display_name, model_provider=entry.provider, model_spec=entry.spec,
        started_at=now, deadline_at=now + timedelta(minutes=study.timer_minutes),
    )
    s.add(conv)
    p.stage = "chat"
    s.flush()
    log_event(s, p, "assign", f"task {p.task_index} -> model {key}", conv)
    return conv


def current_conversation(s: Session, p: Participant) -> Conversation | None:
    return s.scalars(
        select(Conversation).where(Conversation.participant_id == p.id, Conversation.task_index == p.task_index)
    ).first()


def owned_conversation(s: Session, p: Participant, public_id: str) -> Conversation:
    """The participant's own conversation or 404 (the same answer for unknown and for someone else's)."""
    conv = s.scalars(select(Conversation).where(Conversation.public_id == public_id)).first()
    if conv is None or conv.participant_id != p.id:
        raise FlowError(404, "no such conversation in your session")
    return conv


def messages_of(s: Session, conv: Conversation) -> list[Message]:
    return list(s.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.seq)))


def thoughts_of(s: Session, msgs: Sequence[Message]) -> dict[int, Thought]:
    if not msgs:
        return {}
    rows = s.scalars(select(Thought).where(Thought.message_id.in_([m.id for m in msgs])))
    return {t.message_id: t for t in rows}


def time_is_up(conv: Conversation, now: datetime | None = None) -> bool:
    return (now or utcnow()) > conv.deadline_at + TIMER_GRACE


def require_open_chat(p: Participant, conv: Conversation) -> None:
    if p.stage != "chat" or conv.task_index != p.task_index or conv.ended_at is not None:
        raise FlowError(409, "this task is finished; no more messages can be sent", redirect="/next")


@dataclass
class Posted:
    message: Message
    created: bool


def add_user_message(
    s: Session, p: Participant, conv: Conversation, study: StudyConfig, *, content: Any, reason: Any,
    reason_label: Any, client_key: Any,
) -> Posted:
    """Store a user message and its reason in one transaction. A replayed key returns the stored message."""
    key = check_client_key(client_key)
    existing = s.scalars(select(Message).where(Message.conversation_id == conv.id, Message.client_key == key)).first()
    if existing is not None:
        return Posted(existing, False)
    require_open_chat(p, conv)
    if time_is_up(conv):
        raise FlowError(409, "time is up for this task; please write the task summary", redirect="/next")
    text = clean_text(content, "the message", study.max_message_chars)
    note = clean_text(reason, "the reason", study.max_note_chars, required=study.require_reason)
    label = check_label(reason_label, study.reason_labels(), study.labels, "reason")
    msgs = messages_of(s, conv)
    if msgs and msgs[-1].role == "user":
        raise FlowError(409, "the assistant has not answered your last message yet (retry the answer first)")
    if msgs and study.require_reaction and msgs[-1].id not in thoughts_of(s, msgs[-1:]):
        raise FlowError(409, "please write your reaction to the last answer before sending a new message")
    msg = Message(conversation_id=conv.id, seq=len(msgs), role="user", content=text, client_key=key)
    s.add(msg)
    s.flush()
    if note:
        s.add(Thought(message_id=msg.id, kind="reason", content=note, label=label, client_key=key))
    try:
        s.flush()
    except IntegrityError:  # a concurrent replay of the same key won the race
        s.rollback()
        raise FlowError(409, "this message was sent twice at the same moment; reload the page") from None
    return Posted(msg, True)


def pending_user_message(msgs: Sequence[Message]) -> Message | None:
    """The last message when it still waits for an answer (the model failed, timed out or is running)."""
    return msgs[-1] if msgs and msgs[-1].role == "user" else None


def build_model_request(system_prompt: str, msgs: Sequence[Message]) -> list[ChatMessage]:
    """What the model sees: the system prompt and the messages' text. Never a reason or a reaction:
    this function reads only `Message.role` and `Message.content`, and it is the only way a request is built.
    """
    out = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    out.extend(ChatMessage(role="user" if m.role == "user" else "assistant", content=m.content) for m in msgs)
    return out


def answer_to(s: Session, conversation_id: int, reply_to: Message) -> Message | None:
    """The stored answer to `reply_to`, if any."""
    return s.scalars(
        select(Message).where(Message.conversation_id == conversation_id, Message.seq == reply_to.seq + 1)
    ).first()


def add_assistant_message(s: Session, conv: Conversation, reply_to: Message, text: str) -> Message:
    """Store the answer to `reply_to`; when it is already there (a concurrent retry), return that one."""
    existing = answer_to(s, conv.id, reply_to)
    if existing is not None:
        return existing
    msg = Message(conversation_id=conv.id, seq=reply_to.seq + 1, role="assistant", content=text)
    s.add(msg)
    s.flush()
    return msg


def owned_message(s: Session, conv: Conversation, public_id: str) -> Message:
    msg = s.scalars(select(Message).where(Message.public_id == public_id)).first()
    if msg is None or msg.conversation_id != conv.id:
        raise FlowError(404, "no such message in this conversation")
    return msg


def add_reaction(
    s: Session, p: Participant, conv: Conversation, msg: Message, study: StudyConfig, *, content: Any, label: Any,
    client_key: Any,
) -> tuple[Thought, bool]:
    """Store the reaction to an answer (allowed after the timer too, so no note is lost)."""
    key = check_client_key(client_key)
    if msg.role != "assistant":
        raise FlowError(422, "reactions belong to the assistant's answers")
    existing = s.scalars(select(Thought).where(Thought.message_id == msg.id, Thought.kind == "reaction")).first()
    if existing is not None:
        if existing.client_key == key:
            return existing, False
        raise FlowError(409, "you already wrote a reaction to this answer")
    if p.stage != "chat" or conv.task_index != p.task_index:
        raise FlowError(409, "this task is finished", redirect="/next")
    text = clean_text(content, "the reaction", study.max_note_chars, required=True)
    lab = check_label(label, study.reaction_labels(), study.labels, "reaction")
    t = Thought(message_id=msg.id, kind="reaction", content=text, label=lab, client_key=key)
    s.add(t)
    s.flush()
    return t, True


def finish_task(s: Session, p: Participant, conv: Conversation, study: StudyConfig) -> None:
    """End the chat: before the timer only after enough messages and with no reaction owed."""
    if conv.ended_at is not None:
        return
    require_open_chat(p, conv)
    if not time_is_up(conv):
        msgs = messages_of(s, conv)
        n_user = sum(1 for m in msgs if m.role == "user")
        if n_user < study.min_user_messages:
            raise FlowError(409, f"please send at least {study.min_user_messages} message(s) before finishing")
        if msgs and msgs[-1].role == "assistant" and study.require_reaction and msgs[-1].id not in thoughts_of(s, msgs[-1:]):
            raise FlowError(409, "please write your reaction to the last answer before finishing")
    conv.ended_at = utcnow()
    p.stage = "post_task"


def close_if_expired(s: Session, p: Participant, conv: Conversation) -> bool:
    """The timer ended the task: move on to the summary (called when a page is opened after the deadline)."""
    if p.stage == "chat" and conv.ended_at is None and time_is_up(conv):
        conv.ended_at = utcnow()
        p.stage = "post_task"
        return True
    return False


def submit_task_summary(
    s: Session, p: Participant, conv: Conversation, study: StudyConfig, summary: Any, expectation: Any
) -> None:
    require_stage(p, "post_task")
    if conv.task_index != p.task_index:
        raise FlowError(409, "this task's summary is already written", redirect="/next")
    conv.task_summary = clean_text(summary, "the task summary", study.max_note_chars)
    conv.task_expectation = clean_text(expectation, "the task expectation", study.max_note_chars)
    if p.task_index + 1 < study.tasks_per_participant:
        p.task_index += 1
        p.stage = "task"
    else:
        p.stage = "survey"


def submit_survey(s: Session, p: Participant, study: StudyConfig, form: Mapping[str, Any],
                  purposes: Sequence[str]) -> None:
    require_stage(p, "survey")
    answers: dict[str, Any] = {
        "age": clean_text(form.get("age"), "age", 20),
        "gender": _choice(form.get("gender"), study.survey.genders, "gender"),
        "education": _choice(form.get("education"), study.survey.education, "education"),
        "occupation": clean_text(form.get("occupation"), "occupation", SURVEY_TEXT_CHARS),
    }
    try:
        freq = int(form.get("ai_use_frequency", ""))
    except (TypeError, ValueError):
        freq = 0
    if not 1 <= freq <= 5:
        raise FlowError(422, "AI-use frequency must be a number from 1 (never) to 5 (every day)")
    answers["ai_use_frequency"] = freq
    chosen = [_choice(x, study.survey.purposes, "purpose") for x in purposes]
    if not chosen:
        raise FlowError(422, "please tick at least one purpose")
    answers["purposes"] = ", ".join(dict.fromkeys(chosen))
    p.survey = answers
    p.stage = "done"
    p.completed_at = utcnow()


def _choice(value: Any, options: Sequence[str], what: str) -> str:
    if value not in options:
        raise FlowError(422, f"please choose your {what} from the list")
    return str(value)


# ------------------------------------------------------------------------------------------- researcher
def withdraw(s: Session, participant_id: int) -> bool:
    """Delete every row of a participant (explicit deletes, so it holds with or without FK cascades)."""
    if s.get(Participant, participant_id) is None:
        return False
    conv_ids = select(Conversation.id).where(Conversation.participant_id == participant_id)
    msg_ids = select(Message.id).where(Message.conversation_id.in_(conv_ids))
    s.execute(delete(Thought).where(Thought.message_id.in_(msg_ids)))
    s.execute(delete(Event).where(Event.participant_id == participant_id))
    s.execute(delete(Message).where(Message.conversation_id.in_(conv_ids)))
    s.execute(delete(Conversation).where(Conversation.participant_id == participant_id))
    s.execute(delete(Participant).where(Participant.id == participant_id))
    return True


def progress(s: Session) -> dict[str, Any]:
    """Live counts for the admin page: participants by stage, and per model conversations/messages/thoughts."""
    stages = dict(s.execute(select(Participant.stage, func.count()).group_by(Participant.stage)).all())
    per_model: dict[str, dict[str, int]] = {}
    for key, n in s.execute(select(Conversation.model_key, func.count()).group_by(Conversation.model_key)):
        per_model.setdefault(key, {"conversations": 0, "messages": 0, "reasons": 0, "reactions": 0})["conversations"] = n
    for key, n in s.execute(
        select(Conversation.model_key, func.count()).join(Message, Message.conversation_id == Conversation.id)
        .group_by(Conversation.model_key)
    ):
        per_model[key]["messages"] = n
    for key, kind, n in s.execute(
        select(Conversation.model_key, Thought.kind, func.count())
        .join(Message, Message.conversation_id == Conversation.id).join(Thought, Thought.message_id == Message.id)
        .group_by(Conversation.model_key, Thought.kind)
    ):
        per_model[key]["reasons" if kind == "reason" else "reactions"] = n
    totals = {k: sum(v[k] for v in per_model.values()) for k in ("conversations", "messages", "reasons", "reactions")}
    return {"participants": sum(stages.values()), "stages": {st: stages.get(st, 0) for st in STAGES},
            "models": per_model, "totals": totals}
