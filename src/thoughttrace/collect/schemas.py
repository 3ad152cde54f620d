"""Typed bodies of the chat API: what the page sends and what it gets back.

Lenient on purpose where the flow gives a better message (an empty or oversized text is the flow's
422/413 naming the field); strict on types, so a number where text belongs is refused before any
database work. A malformed body is a 400/422 with a one-line reason, never a 500.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Typing(_In):
    """Keystroke timing of one note, recorded by the page (quality flags use it)."""

    ms: StrictInt | None = Field(default=None, ge=0, le=100_000_000)
    keys: StrictInt | None = Field(default=None, ge=0, le=100_000_000)


class MessageIn(_In):
    content: StrictStr | None = None
    reason: StrictStr | None = None
    reason_label: StrictStr | None = None
    idempotency_key: StrictStr | None = None
    reason_typing: Typing | None = None


class ReactionIn(_In):
    content: StrictStr | None = None
    label: StrictStr | None = None
    idempotency_key: StrictStr | None = None
    typing: Typing | None = None


class EmptyIn(_In):
    """Bodies of routes that take none (generate): anything sent is ignored, but it must parse."""


class NoteOut(BaseModel):
    content: str
    label: str | None = None


class MessageOut(BaseModel):
    id: str
    role: str
    content: str
    timestamp: str
    html: str | None = None
    #: assistant answers: stop, length or dropped (then `incomplete`: the page offers Retry)
    finish_reason: str | None = None
    incomplete: bool = False
    note: NoteOut | None = None


class PostedMessageOut(BaseModel):
    message: MessageOut
    created: bool


class ReactionOut(BaseModel):
    message_id: str
    content: str
    label: str | None = None


class PostedReactionOut(BaseModel):
    reaction: ReactionOut
    created: bool


class ChatStateOut(BaseModel):
    conversation: str
    task: str
    task_number: int
    deadline: str
    open: bool
    messages: list[MessageOut]
    awaiting_answer: bool


def typing_dict(t: Typing | None) -> dict[str, Any] | None:
    return None if t is None else t.model_dump()
