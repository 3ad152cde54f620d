"""Strict parsing of a model's label answer. Never guesses: an answer that names no allowed label, or
more than one, is a `ParseError` keeping the raw text, which the labeller feeds back and retries.

Accepted forms (case and surrounding whitespace, quotes, `*`, a trailing period ignored):
- the label itself: `Task Continuation`
- `Label: Task Continuation`
- its option number when the prompt numbered the options: `3`, `3.`, `3) Task Continuation` (the text, if
  any, must then be that option's label)
- JSON: `{"label": "Task Continuation"}`
Only the first non-empty line is read for the plain forms.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence

from thoughttrace.llm.errors import ParseError

_STRIP = " \t\r\n\"'`*_.:;!"


def _norm(s: str) -> str:
    return re.sub(r"\band\b", "&", re.sub(r"\s+", " ", s.strip(_STRIP)).casefold())


@functools.lru_cache(maxsize=64)
def _lookup(allowed: tuple[str, ...]) -> dict[str, str]:
    """Normalised label -> label; computed once per label set (parsing runs once per item of a big job)."""
    return {_norm(a): a for a in allowed}


def parse_label(raw: str, allowed: Sequence[str], *, numbered: bool = False) -> str:
    """The allowed label the answer names, or ParseError."""
    if not allowed:
        raise ValueError("parse_label needs at least one allowed label")
    text = raw.strip()
    if not text:
        raise ParseError("empty answer; reply with one of the labels", raw)
    lookup = _lookup(tuple(allowed))
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(f"the answer looks like JSON but is not valid ({exc.msg})", raw) from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
            raise ParseError('JSON answers must be an object with a string "label"', raw)
        text = obj["label"]
    line = next((ln for ln in text.splitlines() if ln.strip(_STRIP)), "")
    line = re.sub(r"^\s*(label|answer)\s*:\s*", "", line, flags=re.IGNORECASE)
    m = re.match(r"^\s*\(?(\d+)\s*[).:\-]?\s*(.*)$", line)
    if m and numbered:
        idx = int(m.group(1))
        if not 1 <= idx <= len(allowed):
            raise ParseError(f"option number {idx} is out of range 1-{len(allowed)}", raw)
        rest = m.group(2)
        chosen = allowed[idx - 1]
        if rest.strip(_STRIP) and _norm(rest) != _norm(chosen):
            raise ParseError(f"option {idx} is '{chosen}' but the answer also says '{rest.strip()}'", raw)
        return chosen
    key = _norm(line)
    if key in lookup:
        return lookup[key]
    raise ParseError("the answer is not one of the allowed labels", raw)
