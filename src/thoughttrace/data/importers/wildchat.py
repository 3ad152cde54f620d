"""WildChat (allenai/WildChat, WildChat-1M, WildChat-4.8M) -> ThoughtTrace conversations (no thoughts).

A row: `conversation_hash` (WildChat-1M; `conversation_id` in the first release), `model`, `timestamp`,
`conversation` (a list of turns with `role` user|assistant, `content`, and per-turn `timestamp`,
`language`, `toxic`, `redacted`, `hashed_ip`, `country`, `state` ...), `turn` (number of user turns),
`language`, `toxic`, `redacted`, `hashed_ip`, `country`, `state`, moderation outputs.
Kept: ids, model, timestamps, the user (`hashed_ip` -> `user_id`), language, country/state, toxic and
redacted flags, and `source: "wildchat"`. Moderation scores are dropped (large, re-computable).
"""

from __future__ import annotations

from typing import Any

from ..schema import Conversation
from ._common import (
    RecordError,
    as_text,
    as_timestamp,
    build_conversation,
    guess_provider,
    require_dict,
    require_list,
    role_and_text,
)

_ROLES = {"user": "user", "assistant": "assistant", "system": "system"}


def convert(record: Any, index: int) -> Conversation:
    rec = require_dict(record, "one WildChat conversation")
    conv_id = rec.get("conversation_hash") or rec.get("conversation_id")
    if not conv_id:
        raise RecordError("conversation_hash", "missing; a WildChat row has conversation_hash "
                                               "(WildChat-1M) or conversation_id (first release)")
    turns_raw = require_list(rec, "conversation", "a WildChat row keeps its turns in 'conversation'")
    turns = []
    hashed_ip = rec.get("hashed_ip")
    for i, t in enumerate(turns_raw):
        where = f"conversation.{i}"
        role, content = role_and_text(t, where, _ROLES)
        turns.append((role, content, as_timestamp(t.get("timestamp"), f"{where}.timestamp"), f"{where}.role"))
        hashed_ip = hashed_ip or t.get("hashed_ip")
    model = rec.get("model")
    return build_conversation(
        str(conv_id), turns,
        model_name=as_text(model), model_provider=guess_provider(model if isinstance(model, str) else None),
        created_at=as_timestamp(rec.get("timestamp")), user_id=as_text(hashed_ip),
        language=rec.get("language"), country=rec.get("country"), state=rec.get("state"),
        toxic=rec.get("toxic"), redacted=rec.get("redacted"), source="wildchat",
    )
