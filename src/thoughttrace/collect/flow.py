"""The study flow as plain functions on a database connection: no HTTP here, so every rule is testable.

The participant's steps take a Core `Connection` inside one transaction and the typed rows of
`queries` (every statement they run is defined there); the researcher's (withdraw, progress,
monitor) take an ORM `Session`.

Stages, in order: consent -> [screening] -> tutorial (with the quiz) -> task (state it) -> chat ->
post_task (summary, expectation) -> back to task or on to survey -> done. Other ends, each with its own
Prolific completion code: declined (no consent), screened_out, timed_out (study time limit); a
researcher's withdrawal sets `withdrawn`. Each function checks that the
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
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from thoughttrace.llm.types import ChatMessage

from . import queries
from .db import AdminAction, Conversation, Event, Message, Participant, Thought, utcnow
from .design import Design, known_design
from .queries import ConversationRow, MessageRow, ParticipantRow, ThoughtRow
from .study import StudyConfig, SurveyItem, TaskSpec
from .versions import sha256_text, study_design

STAGES = ("consent", "screening", "tutorial", "task", "chat", "post_task", "survey", "done", "declined",
          "screened_out", "timed_out", "full", "withdrawn")
#: stages a participant never leaves; each but `withdrawn` has its own completion page
END_STAGES = ("done", "declined", "screened_out", "timed_out", "full", "withdrawn")
#: the study's states (`study_state`): paused and closed refuse new entries, people mid-study finish
STUDY_STATES = ("open", "paused", "closed")
#: PostgreSQL advisory lock key that serialises model assignment across workers
_ASSIGN_LOCK = 740_511_2027
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


def check_typing(value: Any) -> tuple[int | None, int | None]:
    """Keystroke timing the page records for a note: {"ms": time typing, "keys": keystrokes}; optional."""
    if value in (None, {}):
        return None, None
    if not isinstance(value, dict):
        raise FlowError(422, "typing must be an object like {\"ms\": 5200, \"keys\": 41}")
    out: list[int | None] = []
    for name in ("ms", "keys"):
        v = value.get(name)
        if v is None:
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100_000_000:
            raise FlowError(422, f"typing.{name} must be a whole number from 0 to 100000000")
        out.append(v)
    return out[0], out[1]


def require_stage(p: ParticipantRow, *stages: str) -> None:
    if p.stage not in stages:
        raise FlowError(409, f"this step is not open now (you are at '{p.stage}')", redirect="/next")


# ----------------------------------------------------------------------------------------- participants
def check_open_for_entry(c: Connection, study: StudyConfig) -> None:
    """Refuse a NEW participant while the study is paused or closed, or when every design row is full
    (people already in the study are never stopped by this)."""
    state, _detail = queries.study_state(c)
    if state == "paused":
        raise FlowError(503, study.texts.paused)
    if state == "closed":
        raise FlowError(410, study.texts.closed)
    if not open_rows(c, study, except_participant_id=0):
        raise FlowError(410, study.texts.closed)


def find_or_create_participant(
    c: Connection, prolific_pid: str | None, study_id: str | None, session_id: str | None,
    *, anonymous_entry: bool = True, study: StudyConfig | None = None, study_version: int | None = None,
) -> ParticipantRow:
    """One participant per PROLIFIC_PID: re-entry resumes. A new SESSION_ID (a second submission of the
    same person) is logged and becomes the current one; it never makes a second participant.

    With `study`, a new participant is refused while the study is paused, closed or full
    (`check_open_for_entry`); they are stored under `study_version` and keep it to the end."""
    prolific_pid = check_external_id(prolific_pid, "PROLIFIC_PID")
    study_id = check_external_id(study_id, "STUDY_ID")
    session_id = check_external_id(session_id, "SESSION_ID")
    if not prolific_pid and not anonymous_entry:
        raise FlowError(403, "this study can only be opened from its Prolific link (PROLIFIC_PID is missing)")
    if prolific_pid:
        existing = queries.participant_by_prolific_pid(c, prolific_pid)
        if existing is None:
            if study is not None:
                check_open_for_entry(c, study)
            try:
                with c.begin_nested():  # a concurrent first entry of the same PID wins: resume it instead
                    return queries.insert_participant(c, prolific_pid=prolific_pid, study_id=study_id,
                                                      session_id=session_id, study_version=study_version)
            except IntegrityError:
                existing = queries.participant_by_prolific_pid(c, prolific_pid)
                if existing is None:
                    raise
        if session_id and existing.session_id != session_id:
            log_event(c, existing, "session_change", f"SESSION_ID {existing.session_id or '-'} -> {session_id}")
            queries.update_participant(c, existing, session_id=session_id)
        if study_id and existing.study_id != study_id:
            log_event(c, existing, "study_change", f"STUDY_ID {existing.study_id or '-'} -> {study_id}")
        return existing
    if study is not None:
        check_open_for_entry(c, study)
    return queries.insert_participant(c, prolific_pid=None, study_id=study_id, session_id=session_id,
                                      study_version=study_version)


def check_time_limit(c: Connection, p: ParticipantRow, study: StudyConfig) -> bool:
    """Move a participant past the study's time limit to the time-out path (True when it did)."""
    limit = study.study_time_limit_minutes
    if limit is None or p.stage in END_STAGES:
        return False
    if utcnow() > p.created_at + timedelta(minutes=limit):
        log_event(c, p, "timed_out", f"at stage {p.stage}")
        queries.update_participant(c, p, stage="timed_out", completed_at=utcnow())
        return True
    return False


def log_event(c: Connection, p: ParticipantRow, kind: str, detail: str = "",
              conv: ConversationRow | None = None) -> None:
    queries.insert_event(c, p.id, kind, detail, conv.id if conv else None)


def give_consent(c: Connection, p: ParticipantRow, study: StudyConfig | None = None) -> None:
    """Agreed: record when, and which consent text (the participant's version and the text's sha256)."""
    require_stage(p, "consent")
    consent = {} if study is None else {"consent_version": p.study_version,
                                        "consent_hash": sha256_text(study.texts.consent)}
    queries.update_participant(c, p, consented_at=utcnow(), **consent,
                               stage="screening" if study is not None and study.screening else "tutorial")


def decline_consent(c: Connection, p: ParticipantRow) -> None:
    """The participant does not agree: the study ends for them with the 'declined' completion code."""
    require_stage(p, "consent")
    log_event(c, p, "declined", "consent declined")
    queries.update_participant(c, p, stage="declined", completed_at=utcnow())


def submit_screening(c: Connection, p: ParticipantRow, study: StudyConfig, form: Any) -> dict[str, str]:
    """Check the screening answers; screen out on a listed answer. Returns per-item problems (none: moved on)."""
    require_stage(p, "screening")
    answers, problems = read_items(study.screening, form)
    if problems:
        return problems
    hits = [i.id for i in study.screening if _as_texts(answers.get(i.id)) & set(i.screen_out_values())]
    if hits:
        log_event(c, p, "screened_out", f"by item(s) {', '.join(hits)}")
        queries.update_participant(c, p, screening=answers, stage="screened_out", completed_at=utcnow())
    else:
        queries.update_participant(c, p, screening=answers, stage="tutorial")
    return {}


def submit_quiz(c: Connection, p: ParticipantRow, study: StudyConfig, answers: Mapping[int, Any]) -> list[int]:
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
    attempts = p.quiz_attempts + 1
    log_event(c, p, "quiz", f"attempt {attempts}: {len(wrong)} wrong")
    if wrong:
        queries.update_participant(c, p, quiz_attempts=attempts)
    else:
        queries.update_participant(c, p, quiz_attempts=attempts, quiz_passed_at=utcnow(), stage="task")
        assign_design_row(c, p, study)  # every row full: the participant is at `full` now
    return wrong


# ------------------------------------------------------------------------------------------------ tasks
def design_of(study: StudyConfig) -> Design:
    """The study's counterbalancing design (Williams squares / permutations, crossed): see `design.py`."""
    return study_design(study)


def design_size(study: StudyConfig) -> int:
    """Design rows: model orders x task orders."""
    return len(design_of(study).rows)


def model_sequence(study: StudyConfig, row: int) -> list[str]:
    """The models of one design row, by task position (a row of a balanced Latin square or a permutation)."""
    return list(design_of(study).row(row).models)


def task_sequence(study: StudyConfig, row: int | None) -> list[int]:
    """Which listed task each position shows for a design row: a row of the tasks' Williams square, or
    the listed order (`task_order: as_listed`, free tasks, or no row yet)."""
    if row is None:
        return list(range(study.tasks_per_participant))
    return list(design_of(study).row(row).tasks)


def task_spec_of(study: StudyConfig, p: ParticipantRow) -> TaskSpec:
    """The task the participant's current position shows them (after the rotation of their design row)."""
    return study.task_spec(task_sequence(study, p.design_row)[p.task_index])


def open_rows(c: Connection, study: StudyConfig, except_participant_id: int) -> list[tuple[int, int]]:
    """(row, participants in it) for every design row that can take one more participant.

    Counts participants who did not withdraw or screen out. A row is closed when it holds
    `quotas.per_design_row`, when one of its models is met by `quotas.models[key]` participants (over
    every design the study had), or when `quotas.total` participants hold a row.
    """
    design = design_of(study)
    counts = queries.design_row_counts(c, except_participant_id)
    quotas = study.quotas
    model_counts: dict[str, int] = {}
    for (design_id, row), n in counts.items():
        d = design if design_id == design.design_id or design_id is None else known_design(design_id)
        if d is not None:
            for key in set(d.row(row).models):
                model_counts[key] = model_counts.get(key, 0) + n
    if quotas.total is not None and sum(counts.values()) >= quotas.total:
        return []
    out = []
    for r in design.rows:
        n = counts.get((design.design_id, r.index), 0) + counts.get((None, r.index), 0)
        if quotas.per_design_row is not None and n >= quotas.per_design_row:
            continue
        if any(model_counts.get(k, 0) >= quotas.models[k] for k in set(r.models) if k in quotas.models):
            continue
        out.append((r.index, n))
    return out


def assign_design_row(c: Connection, p: ParticipantRow, study: StudyConfig) -> int | None:
    """Give the participant the least-filled open design row (ties: the lowest), race-free across workers.

    PostgreSQL: a transaction-scoped advisory lock serialises the count-and-set (each statement after
    the lock sees every earlier assignment committed). SQLite: every write transaction is BEGIN
    IMMEDIATE, so one assignment runs at a time anyway. Withdrawn and screened-out participants free
    their row. Called when the quiz is passed, so the first task page already shows the row's first
    task. When every row is full (quotas), the participant ends at `full` (its own completion code) and
    None is returned.
    """
    if p.design_row is not None:
        return p.design_row
    queries.advisory_xact_lock(c, _ASSIGN_LOCK)
    rows = open_rows(c, study, p.id)
    if not rows:
        log_event(c, p, "full", "every design row or model quota is full")
        queries.update_participant(c, p, stage="full", completed_at=utcnow())
        return None
    row = min(rows, key=lambda rn: (rn[1], rn[0]))[0]
    queries.update_participant(c, p, design_row=row, design_id=design_of(study).design_id)
    return row


def start_task(c: Connection, p: ParticipantRow, study: StudyConfig, statement: Any) -> ConversationRow:
    """Open the chat of the participant's current task with the model their design row puts there."""
    require_stage(p, "task")
    row = assign_design_row(c, p, study)
    if row is None:
        raise FlowError(409, study.texts.full, redirect="/end")
    listed = task_sequence(study, row)[p.task_index]
    fixed = study.task_spec(listed).statement
    text = fixed if fixed else clean_text(statement, "the task description", study.max_message_chars)
    key = model_sequence(study, row)[p.task_index]
    entry = study.model_entry(key)
    now = utcnow()
    conv = queries.insert_conversation(
        c, participant_id=p.id, task_index=p.task_index, task_statement=text, model_key=key,
        model_name=entry.display_name, model_provider=entry.provider, model_spec=entry.spec,
        started_at=now, deadline_at=now + timedelta(minutes=study.timer_minutes))
    queries.update_participant(c, p, stage="chat")
    log_event(c, p, "assign", f"task {p.task_index} -> model {key}, listed task {listed} (design row {row})", conv)
    return conv


def current_conversation(c: Connection, p: ParticipantRow) -> ConversationRow | None:
    return queries.conversation_of_task(c, p.id, p.task_index)


def time_is_up(conv: ConversationRow, now: datetime | None = None) -> bool:
    return (now or utcnow()) > conv.deadline_at + TIMER_GRACE


def require_open_chat(p: ParticipantRow, conv: ConversationRow) -> None:
    if p.stage != "chat" or conv.task_index != p.task_index or conv.ended_at is not None:
        raise FlowError(409, "this task is finished; no more messages can be sent", redirect="/next")


@dataclass
class Posted:
    message: MessageRow
    created: bool
    #: the message's reason (None when none was written)
    note: ThoughtRow | None = None


def add_user_message(
    c: Connection, p: ParticipantRow, conv: ConversationRow, study: StudyConfig, *, content: Any, reason: Any,
    reason_label: Any, client_key: Any, typing: Any = None,
) -> Posted:
    """Store a user message and its reason in one transaction. A replayed key returns the stored message."""
    key = check_client_key(client_key)
    msgs = queries.messages_of(c, conv.id)  # one read serves the replay check and the turn-order checks below
    existing = next((m for m in msgs if m.client_key == key), None)
    if existing is not None:
        return Posted(existing, False, queries.thoughts_of(c, [existing.id]).get(existing.id))
    require_open_chat(p, conv)
    if time_is_up(conv):
        raise FlowError(409, "time is up for this task; please write the task summary", redirect="/next")
    text = clean_text(content, "the message", study.max_message_chars)
    note = clean_text(reason, "the reason", study.max_note_chars, required=study.require_reason)
    label = check_label(reason_label, study.reason_labels(), study.labels, "reason")
    typing_ms, keystrokes = check_typing(typing)
    if msgs and msgs[-1].role == "user":
        raise FlowError(409, "the assistant has not answered your last message yet (retry the answer first)")
    if msgs and study.require_reaction and msgs[-1].id not in queries.thoughts_of(c, [msgs[-1].id]):
        raise FlowError(409, "please write your reaction to the last answer before sending a new message")
    try:
        msg = queries.insert_message(c, conversation_id=conv.id, seq=len(msgs), role="user", content=text,
                                     client_key=key)
        thought = None
        if note:
            thought = queries.insert_thought(c, message_id=msg.id, kind="reason", content=note, label=label,
                                             client_key=key, typing_ms=typing_ms, keystrokes=keystrokes)
    except IntegrityError:  # a concurrent replay of the same key won the race (the transaction rolls back)
        raise FlowError(409, "this message was sent twice at the same moment; reload the page") from None
    return Posted(msg, True, thought)


def pending_user_message(msgs: Sequence[MessageRow]) -> MessageRow | None:
    """The last message when it still waits for an answer (the model failed, timed out or is running)."""
    return msgs[-1] if msgs and msgs[-1].role == "user" else None


def build_model_request(system_prompt: str, msgs: Sequence[MessageRow]) -> list[ChatMessage]:
    """What the model sees: the system prompt and the messages' text. Never a reason or a reaction:
    this function reads only each message's `role` and `content`, and it is the only way a request is built.
    """
    out = [ChatMessage(role="system", content=system_prompt)] if system_prompt else []
    out.extend(ChatMessage(role="user" if m.role == "user" else "assistant", content=m.content) for m in msgs)
    return out


def answer_to(c: Connection, conversation_id: int, reply_to: MessageRow) -> MessageRow | None:
    """The stored answer to `reply_to`, if any."""
    return queries.message_at(c, conversation_id, reply_to.seq + 1)


def add_assistant_message(c: Connection, conversation_id: int, reply_to: MessageRow, text: str, *,
                          seed: int | None = None, latency_ms: int | None = None,
                          finish_reason: str | None = None) -> MessageRow:
    """Store the answer to `reply_to` with the seed it was sampled with; when it is already there (a
    concurrent retry, maybe in another worker), return that one."""
    existing = answer_to(c, conversation_id, reply_to)
    if existing is not None:
        return existing
    # IntegrityError (unique seq) when another worker's answer landed after the check: the caller rereads
    return queries.insert_message(c, conversation_id=conversation_id, seq=reply_to.seq + 1, role="assistant",
                                  content=text, seed=seed, latency_ms=latency_ms, finish_reason=finish_reason)


def owned_message(c: Connection, conv: ConversationRow, public_id: str) -> MessageRow:
    msg = queries.message_in(c, conv.id, public_id)
    if msg is None or msg.conversation_id != conv.id:
        raise FlowError(404, "no such message in this conversation")
    return msg


def add_reaction(
    c: Connection, p: ParticipantRow, conv: ConversationRow, msg: MessageRow, study: StudyConfig, *, content: Any,
    label: Any, client_key: Any, typing: Any = None,
) -> tuple[ThoughtRow, bool]:
    """Store the reaction to an answer (allowed after the timer too, so no note is lost)."""
    key = check_client_key(client_key)
    if msg.role != "assistant":
        raise FlowError(422, "reactions belong to the assistant's answers")
    existing = queries.thought_of(c, msg.id, "reaction")
    if existing is not None:
        if existing.client_key == key:
            return existing, False
        raise FlowError(409, "you already wrote a reaction to this answer")
    if p.stage != "chat" or conv.task_index != p.task_index:
        raise FlowError(409, "this task is finished", redirect="/next")
    text = clean_text(content, "the reaction", study.max_note_chars, required=True)
    lab = check_label(label, study.reaction_labels(), study.labels, "reaction")
    typing_ms, keystrokes = check_typing(typing)
    t = queries.insert_thought(c, message_id=msg.id, kind="reaction", content=text, label=lab, client_key=key,
                               typing_ms=typing_ms, keystrokes=keystrokes)
    return t, True


def finish_task(c: Connection, p: ParticipantRow, conv: ConversationRow, study: StudyConfig) -> None:
    """End the chat: before the timer only after enough messages and with no reaction owed."""
    if conv.ended_at is not None:
        return
    require_open_chat(p, conv)
    if not time_is_up(conv):
        msgs = queries.messages_of(c, conv.id)
        n_user = sum(1 for m in msgs if m.role == "user")
        if n_user < study.min_user_messages:
            raise FlowError(409, f"please send at least {study.min_user_messages} message(s) before finishing")
        if (msgs and msgs[-1].role == "assistant" and study.require_reaction
                and msgs[-1].id not in queries.thoughts_of(c, [msgs[-1].id])):
            raise FlowError(409, "please write your reaction to the last answer before finishing")
    queries.update_conversation(c, conv, ended_at=utcnow())
    queries.update_participant(c, p, stage="post_task")


def close_if_expired(c: Connection, p: ParticipantRow, conv: ConversationRow) -> bool:
    """The timer ended the task: move on to the summary (called when a page is opened after the deadline)."""
    if p.stage == "chat" and conv.ended_at is None and time_is_up(conv):
        queries.update_conversation(c, conv, ended_at=utcnow())
        queries.update_participant(c, p, stage="post_task")
        return True
    return False


def submit_task_summary(
    c: Connection, p: ParticipantRow, conv: ConversationRow, study: StudyConfig, summary: Any, expectation: Any
) -> None:
    require_stage(p, "post_task")
    if conv.task_index != p.task_index:
        raise FlowError(409, "this task's summary is already written", redirect="/next")
    queries.update_conversation(c, conv, task_summary=clean_text(summary, "the task summary", study.max_note_chars),
                                task_expectation=clean_text(expectation, "the task expectation",
                                                            study.max_note_chars))
    if p.task_index + 1 < study.tasks_per_participant:
        queries.update_participant(c, p, task_index=p.task_index + 1, stage="task")
    else:
        queries.update_participant(c, p, stage="survey")


def submit_survey(c: Connection, p: ParticipantRow, study: StudyConfig, form: Any) -> dict[str, str]:
    """Store the survey and finish, or return each unanswered/invalid item's problem (nothing stored then:
    the page shows the participant's answers again with the problems marked)."""
    require_stage(p, "survey")
    answers, problems = read_items(study.survey_questions(), form)
    if problems:
        return problems
    queries.update_participant(c, p, survey=answers, stage="done", completed_at=utcnow())
    return {}


def _form_values(form: Any, name: str) -> list[str]:
    raw = form.getlist(name) if hasattr(form, "getlist") else form.get(name)
    if raw is None:
        return []
    values = raw if isinstance(raw, list | tuple) else [raw]
    return [v.strip() for v in (str(x) for x in values) if v.strip()]


def _as_texts(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        return {x.strip() for x in value.split(", ")} | {value}
    return {str(value)}


def read_item(item: SurveyItem, values: Sequence[str]) -> tuple[Any, str | None]:
    """One answer from the submitted strings: (value, None) or (None, the problem to show)."""
    if not values:
        return None, ("please answer this question" if item.required else None)
    if item.type == "multiple":
        chosen = list(dict.fromkeys(values))
        if any(v not in item.options for v in chosen):
            return None, "please choose from the listed options"
        return ", ".join(v for v in item.options if v in chosen), None
    value = values[0]
    if "\x00" in value:
        return None, "the answer contains a NUL character"
    if item.type == "single":
        return (value, None) if value in item.options else (None, "please choose one of the listed options")
    if item.type == "likert":
        if value not in {str(i) for i in range(1, item.scale + 1)}:
            return None, f"please choose a point from 1 to {item.scale}"
        return int(value), None
    if item.type == "number":
        try:
            number: float = int(value) if item.integer else float(value)
        except ValueError:
            return None, "please write a whole number" if item.integer else "please write a number"
        if number != number or (item.min is not None and number < item.min) or (
                item.max is not None and number > item.max):
            lo = "" if item.min is None else f"{item.min:g}"
            hi = "" if item.max is None else f"{item.max:g}"
            return None, f"please write a number from {lo or '-inf'} to {hi or 'inf'}"
        return number, None
    if len(value) > item.max_chars:
        return None, f"at most {item.max_chars} characters, please ({len(value)} now)"
    return value.replace("\r\n", "\n"), None


def read_items(items: Sequence[SurveyItem], form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Every item's answer and every item's problem (all of them at once, so none is a dead end)."""
    answers: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for item in items:
        value, problem = read_item(item, _form_values(form, item.id))
        if problem:
            problems[item.id] = problem
        else:
            answers[item.id] = value
    return answers, problems


def submitted_values(items: Sequence[SurveyItem], form: Any) -> dict[str, list[str]]:
    """What the participant sent, per item, to put back into the page after a problem."""
    return {item.id: _form_values(form, item.id) for item in items}


# ------------------------------------------------------------------------------------------- researcher
def withdraw(s: Session, participant_id: int, *, reason: str = "", actor: str = "admin") -> bool:
    """Delete every answer of a participant; keep the participant row marked `withdrawn` (its Prolific
    ids stay for the payment record) and write the audit line. Explicit deletes: holds without FK cascades."""
    p = s.get(Participant, participant_id)
    if p is None:
        return False
    conv_ids = select(Conversation.id).where(Conversation.participant_id == participant_id)
    msg_ids = select(Message.id).where(Message.conversation_id.in_(conv_ids))
    counts = {
        "conversations": s.scalar(select(func.count()).select_from(Conversation)
                                  .where(Conversation.participant_id == participant_id)) or 0,
        "messages": s.scalar(select(func.count()).select_from(Message)
                             .where(Message.conversation_id.in_(conv_ids))) or 0,
    }
    s.execute(delete(Thought).where(Thought.message_id.in_(msg_ids)))
    s.execute(delete(Event).where(Event.participant_id == participant_id))
    s.execute(delete(Message).where(Message.conversation_id.in_(conv_ids)))
    s.execute(delete(Conversation).where(Conversation.participant_id == participant_id))
    s.add(AdminAction(action="withdraw", participant_public_id=p.public_id, prolific_pid=p.prolific_pid,
                      detail=f"by {actor}; from stage {p.stage}; deleted {counts['conversations']} conversation(s), "
                             f"{counts['messages']} message(s){'; reason: ' + reason[:500] if reason else ''}"))
    p.withdrawn_from_stage = p.stage
    p.stage = "withdrawn"
    p.survey = None
    p.screening = None
    p.withdrawn_at = utcnow()
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
    return {"participants": sum(n for st, n in stages.items() if st != "withdrawn"),
            "stages": {st: stages.get(st, 0) for st in STAGES}, "models": per_model, "totals": totals,
            "monitor": model_monitor(s)}


def _pct(xs: Sequence[int], q: float) -> float | None:
    if not xs:
        return None
    ordered = sorted(xs)
    return float(ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))])


def model_monitor(s: Session) -> dict[str, dict[str, Any]]:
    """Per model: answers, failed calls, error rate (failed / calls, with n) and answer latency p50/p95.

    A share that has no calls yet is null with its reason, never 0.
    """
    latencies: dict[str, list[int]] = {}
    for key, ms in s.execute(
        select(Conversation.model_key, Message.latency_ms).join(Message, Message.conversation_id == Conversation.id)
        .where(Message.role == "assistant")
    ):
        latencies.setdefault(key, [])
        if ms is not None:
            latencies[key].append(int(ms))
    answers = dict(s.execute(
        select(Conversation.model_key, func.count()).join(Message, Message.conversation_id == Conversation.id)
        .where(Message.role == "assistant").group_by(Conversation.model_key)).all())
    errors = dict(s.execute(
        select(Conversation.model_key, func.count()).join(Event, Event.conversation_id == Conversation.id)
        .where(Event.kind == "model_error").group_by(Conversation.model_key)).all())
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(answers) | set(errors) | set(latencies)):
        n_ok, n_err = int(answers.get(key, 0)), int(errors.get(key, 0))
        calls = n_ok + n_err
        xs = latencies.get(key, [])
        out[key] = {
            "answers": n_ok, "errors": n_err, "calls": calls,
            "error_rate": n_err / calls if calls else None,
            "error_rate_note": None if calls else "no model calls yet",
            "latency_p50_ms": _pct(xs, 50), "latency_p95_ms": _pct(xs, 95), "latency_n": len(xs),
        }
    return out
