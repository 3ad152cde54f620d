"""OpenAI chat messages (fine-tuning / chat-completions JSONL) -> ThoughtTrace conversations.

A line: `{"messages": [{"role": "system"|"developer"|"user"|"assistant"|"tool", "content": ...}, ...]}`,
optionally with `id`, `model` and `metadata`; a bare list of messages is accepted too. Content is a
string or a list of parts (`{"type": "text", "text": ...}`; images become "[image]"). System/developer
messages become `system_prompt`; tool and function messages, and assistant turns that only call tools
(no text), are dropped and counted in `dropped_messages`. Lines without an id get `openai-<line>`.
"""

from __future__ import annotations

from typing import Any

from ..schema import Conversation
from ._common import RecordError, as_text, as_timestamp, build_conversation, guess_provider, message_text

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_DROPPED = {"tool", "function", "ipython"}


def convert(record: Any, index: int) -> Conversation:
    if isinstance(record, list):
        rec: dict[str, Any] = {"messages": record}
        prefix = ""
    elif isinstance(record, dict):
        rec = record
        prefix = "messages."
    else:
        raise RecordError("", f"expected an object with 'messages' (or a list of messages), got {type(record).__name__}")
    msgs = rec.get("messages")
    if not isinstance(msgs, list):
        raise RecordError("messages", "missing or not a list; a line is {\"messages\": [{\"role\": ..., "
                                      "\"content\": ...}, ...]}")
    turns = []
    dropped = 0
    for i, m in enumerate(msgs):
        where = f"{prefix}{i}"
        if not isinstance(m, dict):
            raise RecordError(where, f"expected a message object with role and content, got {type(m).__name__}")
        role = m.get("role")
        if role in _DROPPED:
            dropped += 1
            continue
        if role not in _ROLES:
            raise RecordError(f"{where}.role", f"expected system, user, assistant or tool, got {role!r}")
        content = m.get("content")
        if content is None and role == "assistant" and (m.get("tool_calls") or m.get("function_call")):
            dropped += 1
            continue
        turns.append((_ROLES[role], message_text(content, f"{where}.content"), as_timestamp(m.get("timestamp"), f"{where}.timestamp"),
                      f"{where}.role"))
    conv_id = rec.get("id")
    model = rec.get("model")
    return build_conversation(
        str(conv_id) if conv_id not in (None, "") else f"openai-{index}", turns,
        model_name=as_text(model), model_provider=guess_provider(model if isinstance(model, str) else None),
        metadata=rec.get("metadata"), dropped_messages=dropped or None, source="openai",
    )
