"""Per-participant quality flags: failed attention checks and low-effort notes.

A flag is a rule that fired, with how often; it is evidence for the researcher to look at (admin list,
participants CSV), never an automatic rejection. The rules and their thresholds live in the study
config (`quality:`), so a study tunes them without code:

- `attention_check_failed`: an instructed-response item (survey or screening) answered otherwise;
- `empty_note`: a message sent without a reason (possible only when reasons are optional);
- `short_note`: a reason or reaction shorter than `quality.min_note_chars`;
- `copied_note`: a note that repeats its message (or the answer) instead of saying what the person thinks;
- `repeated_note`: the same note written `quality.repeat_limit` times or more by one participant;
- `fast_typing`: a note typed faster than `quality.max_chars_per_second`, or with far fewer keystrokes
  than characters (pasted), from the keystroke timing the chat page records.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import Conversation, Message, Participant, Thought
from .study import StudyConfig, SurveyItem

FLAGS = ("attention_check_failed", "empty_note", "short_note", "copied_note", "repeated_note", "fast_typing")
#: notes shorter than this are not judged on typing speed or copying (a few keys say little)
MIN_CHARS_FOR_SPEED = 10
_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: 'Good!!' and 'good' are the same note."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


@dataclass(frozen=True)
class Note:
    kind: str
    content: str
    message: str
    typing_ms: int | None
    keystrokes: int | None


def attention_failures(items: Sequence[SurveyItem], answers: dict[str, Any] | None) -> list[str]:
    """Ids of instructed-response items answered otherwise (unanswered surveys are not judged)."""
    if not answers:
        return []
    failed = []
    for item in items:
        expected = set(item.expected_answers())
        if not expected or item.id not in answers:
            continue
        given = answers[item.id]
        if given is None:
            failed.append(item.id)
        elif item.type == "multiple":
            if {x.strip() for x in str(given).split(", ")} != expected:  # exactly the instructed boxes
                failed.append(item.id)
        elif str(given) not in expected:
            failed.append(item.id)
    return failed


def note_flags(study: StudyConfig, notes: Sequence[Note], unreasoned_messages: int = 0) -> Counter[str]:
    """Low-effort rules over one participant's notes."""
    rules = study.quality
    flags: Counter[str] = Counter()
    if unreasoned_messages:
        flags["empty_note"] += unreasoned_messages
    seen = Counter(normalise(n.content) for n in notes if normalise(n.content))
    for count in seen.values():
        if count >= rules.repeat_limit:
            flags["repeated_note"] += count
    for n in notes:
        content = n.content.strip()
        norm = normalise(content)
        if not norm:
            flags["empty_note"] += 1
            continue
        if len(content) < rules.min_note_chars:
            flags["short_note"] += 1
        msg = normalise(n.message)
        if msg and (norm == msg or (len(norm) >= MIN_CHARS_FOR_SPEED and norm in msg)):
            flags["copied_note"] += 1
        if len(content) >= MIN_CHARS_FOR_SPEED:
            too_fast = n.typing_ms is not None and len(content) / max(n.typing_ms / 1000, 0.001) > \
                rules.max_chars_per_second
            pasted = n.keystrokes is not None and n.keystrokes / len(content) < rules.min_keystroke_ratio
            if too_fast or pasted:
                flags["fast_typing"] += 1
    return flags


def quality_flags(s: Session, study: StudyConfig, participants: Iterable[Participant]) -> dict[int, dict[str, int]]:
    """Flags of each participant (by row id), loaded in a few queries for a whole page of participants."""
    people = list(participants)
    ids = [p.id for p in people]
    out: dict[int, dict[str, int]] = {}
    if not ids:
        return out
    notes: dict[int, list[Note]] = {i: [] for i in ids}
    unreasoned: Counter[int] = Counter()
    rows = s.execute(
        select(Conversation.participant_id, Message.id, Message.role, Message.content)
        .join(Message, Message.conversation_id == Conversation.id).where(Conversation.participant_id.in_(ids))
    ).all()
    by_msg = {mid: (pid, role, content) for pid, mid, role, content in rows}
    thoughts = s.scalars(select(Thought).where(Thought.message_id.in_(list(by_msg)))).all() if by_msg else []
    with_reason = set()
    for t in thoughts:
        pid, _role, content = by_msg[t.message_id]
        notes[pid].append(Note(t.kind, t.content, content, t.typing_ms, t.keystrokes))
        if t.kind == "reason":
            with_reason.add(t.message_id)
    for mid, (pid, role, _content) in by_msg.items():
        if role == "user" and mid not in with_reason:
            unreasoned[pid] += 1
    items = [*study.screening, *study.survey_questions()]
    for p in people:
        flags = note_flags(study, notes[p.id], unreasoned[p.id])
        answers = {**(p.screening or {}), **(p.survey or {})}
        failed = attention_failures(items, answers)
        if failed:
            flags["attention_check_failed"] = len(failed)
        out[p.id] = {f: flags[f] for f in FLAGS if flags[f]}
    return out
