"""Prompt templates live in `tom/prompts/*.txt` (package data); this module only loads and fills them."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def template(name: str) -> str:
    return resources.files("thoughttrace.tom").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **fields: object) -> str:
    """Fill a template with str.format fields (templates escape literal braces as {{ }})."""
    return template(name).format(**fields)
