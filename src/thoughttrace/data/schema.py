"""Pydantic models of the released ThoughtTrace conversation schema (see SCHEMA.md of the release).

Both releases' field names are accepted on input (`text` for `content`, `conversation_id` for `id`);
output always uses the current names. Labels are free strings here (a user's own data may carry other
taxonomies); `taxonomy.py` holds the release's types and `validate_labels` checks against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

FORMAT_VERSION = 1


class Thought(BaseModel):
    """A private note: a reason (on a user message) or a reaction (on an assistant message)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    content: str = Field(validation_alias=AliasChoices("content", "text"))
    timestamp: str | None = None
    label: str | None = None


class Message(BaseModel):
    """One turn: a user or an assistant message."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    id: str = Field(validation_alias=AliasChoices("id", "message_id"))
    timestamp: str | None = None
    type: Literal["user", "assistant"]
    content: str = Field(validation_alias=AliasChoices("content", "text"))
    reasons: list[Thought] | None = None
    reactions: list[Thought] | None = None

    @model_validator(mode="after")
    def _thoughts_on_the_right_side(self) -> Message:
        if self.type == "user" and self.reactions:
            raise ValueError("reactions belong on assistant messages, not on a user message")
        if self.type == "assistant" and self.reasons:
            raise ValueError("reasons belong on user messages, not on an assistant message")
        return self

    @property
    def thoughts(self) -> list[Thought]:
        return list(self.reasons or []) + list(self.reactions or [])


def user_key_of(conversation_id: str, user_id: str | None) -> str:
    """Who wrote a conversation: `user_id` when present, else the `userN_` prefix of a release id, else the id."""
    if user_id:
        return user_id
    head = conversation_id.split("_", 1)[0]
    return head if head.startswith("user") else conversation_id


class Conversation(BaseModel):
    """One conversation, one JSONL line."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    id: str = Field(validation_alias=AliasChoices("id", "conversation_id"))
    model_name: str | None = None
    model_provider: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    task_summary: str | None = None
    task_expectation: str | None = None
    survey_answers: list[Any] | dict[str, Any] | None = None
    domain: str | None = None
    topic: str | None = None
    user_id: str | None = None
    messages: list[Message]

    def to_json_dict(self) -> dict[str, Any]:
        """The released field names, extra fields kept, for writing."""
        return self.model_dump(mode="json", by_alias=False)

    @property
    def user_messages(self) -> list[Message]:
        return [m for m in self.messages if m.type == "user"]

    @property
    def assistant_messages(self) -> list[Message]:
        return [m for m in self.messages if m.type == "assistant"]

    def user_key(self) -> str:
        """Who wrote it: see `user_key_of`."""
        return user_key_of(self.id, self.user_id)
