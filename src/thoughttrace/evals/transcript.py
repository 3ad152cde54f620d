"""Render conversation prefixes as prompt text, clipped so long assistant answers fit small contexts.

The shared conversation goes FIRST in every prompt and the varying question last, so a llama.cpp server
reuses the prefix from its KV cache across the items and samples of one conversation.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from thoughttrace.data import Message

START = "(the conversation starts here)"


class ClipConfig(BaseModel):
    """How much conversation a prompt shows: per message, and in total (the most recent messages win)."""

    max_message_chars: int = 1200
    max_chars: int = 6000


def clip(text: str, limit: int) -> str:
    """Keep the head and tail of a long text, marking what was cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    head = int(limit * 0.7)
    tail = max(limit - head, 0)
    cut = len(text) - head - tail
    return f"{text[:head]} [... {cut} characters omitted ...] {text[len(text) - tail:] if tail else ''}".rstrip()


def speaker(message: Message) -> str:
    return "User" if message.type == "user" else "Assistant"


def keep_recent(blocks: Sequence[str], max_chars: int, sep: int) -> tuple[list[str], int]:
    """The most recent blocks that fit in `max_chars` (each joined by `sep` characters; the last one is always
    kept), in order, and how many earlier ones were left out: one clipping rule for every transcript."""
    kept: list[str] = []
    total = 0
    for block in reversed(blocks):
        if kept and total + len(block) > max_chars:
            break
        kept.append(block)
        total += len(block) + sep
    kept.reverse()
    return kept, len(blocks) - len(kept)


def render(messages: Sequence[Message], clip_config: ClipConfig | None = None) -> str:
    """`User: ...` / `Assistant: ...` blocks of the visible messages (never their thoughts)."""
    cfg = clip_config or ClipConfig()
    if not messages:
        return START
    blocks = [f"{speaker(m)}: {clip(m.content, cfg.max_message_chars)}" for m in messages]
    kept, omitted = keep_recent(blocks, cfg.max_chars, len("\n\n"))
    if omitted:
        kept.insert(0, f"[... {omitted} earlier messages omitted ...]")
    return "\n\n".join(kept)


def thoughts_text(message: Message) -> str | None:
    """A message's thoughts joined into one reference text (None when it has none)."""
    texts = [t.content.strip() for t in message.thoughts if t.content and t.content.strip()]
    return " / ".join(texts) if texts else None


def thought_labels(message: Message) -> list[str]:
    return [t.label or "unlabelled" for t in message.thoughts if t.content and t.content.strip()]
