"""Structured LLM steps: prompt -> JSON -> pydantic validation -> one retry with the error -> fallback.

Backends that support it get the JSON schema for grammar-constrained decoding (llama.cpp turns it into a
grammar), so small models at least produce well-formed JSON; the pydantic model (plus an optional
semantic `check`, e.g. "the agent must occur in the story") then decides whether it is usable. An
unusable output is a typed `ParseError` that keeps the raw text; after the retry the caller's documented
fallback is used. Nothing here ever raises on bad model output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from thoughttrace.llm import LLMError, ParseError

from .usage import TrackedModel

T = TypeVar("T", bound=BaseModel)


def extract_json(text: str) -> Any:
    """The first balanced JSON object in `text` (models like to wrap JSON in prose or code fences)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        in_str = False
        escape = False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if escape:
                    escape = False
                elif ch == "\\":
                    escape = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start:i + 1])
                    except json.JSONDecodeError:
                        break
        start = text.find("{", start + 1)
    raise ParseError("no JSON object found", text)


def parse_as(text: str, schema: type[T], check: Callable[[T], None] | None = None) -> T:
    """Parse and validate; every failure becomes a ParseError that keeps the raw text."""
    data = extract_json(text)
    try:
        value = schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "object"
        raise ParseError(f"field '{where}': {first['msg']}", text) from exc
    if check is not None:
        try:
            check(value)
        except ValueError as exc:
            raise ParseError(str(exc), text) from exc
    return value


async def structured_step(
    model: TrackedModel,
    messages: list[dict[str, str]],
    schema: type[T],
    *,
    check: Callable[[T], None] | None = None,
    max_tokens: int = 200,
    constrained: bool = True,
    json_schema: dict[str, Any] | None = None,
    keep_unchecked: bool = False,
) -> tuple[T | None, dict[str, Any]]:
    """Run one structured step; returns (value or None, trace). None means: use your fallback.

    `json_schema` (default: the pydantic model's) is what constrained decoding enforces; callers pass a
    tighter one (item counts, string lengths, enums) so a small model cannot run away inside a list.
    With `keep_unchecked`, an output that validates against the schema but still fails `check` after the
    retry is returned (trace["check_failed"] = True) so that the caller can repair the failing fields one
    by one with its deterministic fallbacks instead of discarding the whole output.
    """
    trace: dict[str, Any] = {"schema": schema.__name__, "attempts": []}
    if constrained and json_schema is None:
        json_schema = schema.model_json_schema()
    elif not constrained:
        json_schema = None
    msgs = list(messages)
    unchecked: T | None = None
    for attempt in range(2):
        try:
            out = await model.agenerate(msgs, max_tokens=max_tokens, temperature=0.0, json_schema=json_schema)
        except LLMError as exc:  # a failing backend call also falls back, the item goes on
            trace["attempts"].append({"error": f"{type(exc).__name__}: {exc}"})
            break
        try:
            value = parse_as(out.text, schema, check)
        except ParseError as exc:
            if keep_unchecked:
                try:
                    unchecked = parse_as(out.text, schema)
                except ParseError:
                    unchecked = None
            trace["attempts"].append({"raw": out.text[:500], "error": str(exc).split(" (raw output")[0]})
            if attempt == 0:
                msgs = [*msgs, {"role": "assistant", "content": out.text},
                        {"role": "user", "content": f"That output was invalid: {str(exc).split(' (raw output')[0]}. "
                                                    "Reply again with only the corrected JSON object."}]
            continue
        trace["attempts"].append({"raw": out.text[:500], "ok": True})
        trace["ok"] = True
        return value, trace
    trace["ok"] = False
    if unchecked is not None:
        trace["check_failed"] = True
        return unchecked, trace
    trace["fallback"] = True
    return None, trace
