"""Free-text generation with cleaning, a check, a retry with the error fed back, and a fallback.

Models often wrap the answer ("Note: ...", quotes, a preamble line); cleaning removes the wrapper. An empty
answer is a ParseError; it is fed back once per retry, and when every attempt fails the caller gets an
empty text plus the error (fallback), which the per-item record keeps.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from thoughttrace.llm import GenerationConfig, Model, ParseError

from .resources import load_prompt

_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:the\s+)?(?:user'?s?\s+)?(?:private\s+)?(?:note|reason|reaction|thought|message|user|next message)"
    r"(?:\*\*)?\s*:\s*(?:\*\*)?",
    re.I,
)


def clean_text(text: str, first_paragraph: bool = True) -> str:
    """Strip echoed headings, a leading label, surrounding quotes and (optionally) all but the first line."""
    lines = text.strip().splitlines()
    # small models echo prompt headings ("The user's last message above is:"); drop leading ones
    while lines and (not lines[0].strip() or (lines[0].rstrip().endswith(":") and len(lines) > 1)):
        lines.pop(0)
    t = "\n".join(lines).strip()
    if first_paragraph:
        t = t.splitlines()[0].strip() if t else t
    t = _LABEL.sub("", t, count=1).strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'“”":
        t = t[1:-1].strip()
    t = t.strip("“”").strip()
    return t


class TextResult(BaseModel):
    text: str
    attempts: int
    error: str | None = None
    raw: str = ""


async def generate_text(
    model: Model,
    messages: list[dict[str, str]],
    *,
    max_tokens: int = 120,
    max_retries: int = 1,
    first_paragraph: bool = True,
    config: GenerationConfig | None = None,
) -> TextResult:
    cfg = (config or GenerationConfig()).model_copy(update={"max_tokens": max_tokens})
    convo: list[dict[str, Any]] = list(messages)
    raw = ""
    error: str | None = None
    for attempt in range(1, max_retries + 2):
        gen = await model.agenerate(convo, cfg)
        raw = gen.text
        text = clean_text(raw, first_paragraph=first_paragraph)
        if text:
            return TextResult(text=text, attempts=attempt, raw=raw)
        error = str(ParseError("the reply was empty; write the requested text", raw)).split(" (raw output")[0]
        convo = [*convo, {"role": "assistant", "content": raw}, {"role": "user", "content": load_prompt("retry").fill("user", error=error)}]
    return TextResult(text="", attempts=max_retries + 1, error=error, raw=raw[:300])
