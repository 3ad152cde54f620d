"""LMSYS-Chat-1M (lmsys/lmsys-chat-1m) -> ThoughtTrace conversations (no thoughts).

A row: `conversation_id`, `model`, `conversation` (OpenAI-style turns: `role` user|assistant, `content`),
`turn` (number of user turns), `language`, `openai_moderation`, `redacted`. There are no timestamps and
no user ids in the public release, so each conversation counts as its own user.
Kept: id, model (+ provider from its family), language, redacted, `source: "lmsys"`.
"""

from __future__ import annotations

from typing import Any

from ..schema import Conversation
from ._common import (
    RecordError,
    as_text,
    build_conversation,
    guess_provider,
    require_dict,
    require_list,
    role_and_text,
)

_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant", "system": "system"}


def convert(record: Any, index: int) -> Conversation:
    rec = require_dict(record, "one LMSYS-Chat-1M conversation")
    conv_id = rec.get("conversation_id")
    if not conv_id:
        raise RecordError("conversation_id", "missing; every LMSYS-Chat-1M row has a conversation_id")
    turns_raw = require_list(rec, "conversation", "an LMSYS-Chat-1M row keeps its turns in 'conversation'")
    turns = []
    for i, t in enumerate(turns_raw):
        where = f"conversation.{i}"
        role, content = role_and_text(t, where, _ROLES)
        turns.append((role, content, None, f"{where}.role"))
    model = rec.get("model")
    return build_conversation(
        str(conv_id), turns,
        model_name=as_text(model), model_provider=guess_provider(model if isinstance(model, str) else None),
        language=rec.get("language"), redacted=rec.get("redacted"), source="lmsys",
    )
