"""ShareGPT (the original ShareGPT dumps and the many "sharegpt-format" datasets) -> ThoughtTrace.

A record: `id`, `conversations` (a list of `{"from": "human"|"gpt"|"system", "value": text}`), sometimes
`model`. Shipped as a JSON list (ShareGPT_V3_unfiltered_cleaned_split.json) or as JSONL; both read
streaming. Speaker names seen in the wild are mapped: human/user -> user; gpt/chatgpt/assistant/bard/
bing/model -> assistant; system -> `system_prompt`. Records without an id get `sharegpt-<line>`.
"""

from __future__ import annotations

from typing import Any

from ..schema import Conversation
from ._common import (
    as_text,
    build_conversation,
    guess_provider,
    require_dict,
    require_list,
    role_and_text,
)

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "assistant": "assistant",
          "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system"}


def convert(record: Any, index: int) -> Conversation:
    rec = require_dict(record, "one ShareGPT conversation")
    conv_id = rec.get("id")
    turns_raw = require_list(rec, "conversations", "a ShareGPT record keeps its turns in 'conversations' "
                                                   "as {from: human|gpt, value: text}")
    turns = []
    for i, t in enumerate(turns_raw):
        where = f"conversations.{i}"
        kind, value = role_and_text(t, where, _ROLES, role_key="from", text_key="value")
        turns.append((kind, value, None, f"{where}.from"))
    model = rec.get("model")
    return build_conversation(
        str(conv_id) if conv_id not in (None, "") else f"sharegpt-{index}", turns,
        model_name=as_text(model), model_provider=guess_provider(model if isinstance(model, str) else None),
        source="sharegpt",
    )
