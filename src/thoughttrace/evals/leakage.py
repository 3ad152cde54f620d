"""Leakage guards: what a condition must not show the model never reaches the prompt.

Next-message prediction in the `history` and `reaction` conditions must not see the target message or its
reason; thought inference must not see the thought it infers; the simulated conversation's assistant must
not see the user's private notes. Every prompt those methods build passes through `check_no_leakage`
before it is sent, so a bug in prompt assembly fails loudly instead of inflating a score.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

#: forbidden texts longer than this are also checked by their first and last PROBE characters,
#: so a truncated copy of the text is caught too
PROBE = 48


class LeakageError(RuntimeError):
    """A prompt contains text the condition must not show (a bug in prompt assembly)."""


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _prompt_text(prompt: str | Sequence[Any]) -> str:
    if isinstance(prompt, str):
        return prompt
    parts: list[str] = []
    for m in prompt:
        parts.append(str(m["content"]) if isinstance(m, dict) else str(getattr(m, "content", m)))
    return "\n".join(parts)


def _probes(text: str) -> list[str]:
    t = normalise(text)
    if not t:
        return []
    if len(t) <= PROBE:
        return [t]
    return [t, t[:PROBE], t[-PROBE:]]


def find_leaks(prompt: str | Sequence[Any], forbidden: Iterable[str], allowed: Iterable[str] = ()) -> list[str]:
    """Forbidden texts found in the prompt and not explained by allowed context.

    `allowed` holds the texts the prompt is meant to contain (the visible conversation, the template):
    when a user repeats an earlier message word for word, the repeat is context, not a leak.
    """
    haystack = normalise(_prompt_text(prompt))
    allowed_text = "\n".join(normalise(a) for a in allowed)
    leaks = []
    for text in forbidden:
        for probe in _probes(text):
            if probe in haystack and probe not in allowed_text:
                leaks.append(text)
                break
    return leaks


def check_no_leakage(
    prompt: str | Sequence[Any], forbidden: Iterable[str], allowed: Iterable[str] = (), where: str = "prompt"
) -> None:
    """Raise LeakageError when a forbidden text reaches the prompt."""
    leaks = find_leaks(prompt, forbidden, allowed)
    if leaks:
        shown = "; ".join(repr(t[:60]) for t in leaks)
        raise LeakageError(f"{where}: the prompt contains text this condition must not see: {shown}")
