"""Prompt formatting, kept apart from transport and parsing. Templates are package data (prompts/*.txt).

The long shared part (instructions, label definitions, examples) comes first and the item last, so a
local llama.cpp model reuses the shared prefix from its KV cache across items.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from thoughttrace.llm import ChatMessage

from .items import LabelItem
from .labelsets import LabelSet


@cache
def template(name: str) -> str:
    return resources.files("thoughttrace.label").joinpath(f"prompts/{name}.txt").read_text("utf-8").strip()


def _options(ls: LabelSet, order: Sequence[str], numbered: bool) -> str:
    defs = {d.label: d.definition for d in ls.labels}
    if numbered:
        return "\n".join(f"{i}. {lab}: {defs[lab]}" for i, lab in enumerate(order, start=1))
    return "\n".join(f"- {lab}: {defs[lab]}" for lab in order)


def _example(ls: LabelSet, ex: dict[str, Any], order: Sequence[str], numbered: bool) -> str:
    answer = str(order.index(ex["label"]) + 1) if numbered else ex["label"]
    if ls.kind == "relation":
        head = f'Previous: "{ex["previous"]}" | Current: "{ex["message"]}"'
    elif ls.kind == "domain":
        head = f'User messages: "{ex["message"]}"'
    else:
        head = f'Message: "{ex["message"]}" | {ls.kind.capitalize()}: "{ex["thought"]}"'
    return f"{head} -> {answer}"


def build_messages(item: LabelItem, ls: LabelSet, *, order: Sequence[str] | None = None,
                   numbered: bool = False) -> list[ChatMessage]:
    """System + user message asking for the label of one item (options in `order`)."""
    order = list(order or ls.names)
    examples = "\n".join(_example(ls, ex, order, numbered) for ex in ls.examples if ex["label"] in order)
    body = Template(template(item.kind)).safe_substitute(
        options=_options(ls, order, numbered), examples=examples or "(none)",
        message=item.fields.get("message", ""), thought=item.fields.get("thought", ""),
        context=item.fields.get("context", ""), previous=item.fields.get("previous", ""),
    )
    if numbered:
        body += "\n" + template("numbered_suffix")
    return [ChatMessage(role="system", content=template("system")), ChatMessage(role="user", content=body)]


def retry_messages(messages: list[ChatMessage], raw: str, error: str, allowed: Sequence[str]) -> list[ChatMessage]:
    """The conversation so far plus the model's bad answer and what was wrong with it."""
    feedback = Template(template("retry")).safe_substitute(error=error, labels="; ".join(allowed))
    return [*messages, ChatMessage(role="assistant", content=raw or "(empty)"),
            ChatMessage(role="user", content=feedback)]
