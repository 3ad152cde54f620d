"""Prompt templates of the align pipeline, loaded from package data (`align/prompts/*.txt`)."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import yaml

from .records import read_resource


@cache
def template(name: str) -> str:
    """The text of `prompts/<name>.txt` (trailing newline stripped)."""
    return read_resource(f"prompts/{name}.txt").rstrip("\n")


@lru_cache(maxsize=1)
def judge_labels() -> dict[str, dict[str, float]]:
    """Verdict label -> {score, weight} from prompts/judge.yaml."""
    data: dict[str, Any] = yaml.safe_load(read_resource("prompts/judge.yaml"))
    return {str(k): {"score": float(v["score"]), "weight": float(v["weight"])} for k, v in data["labels"].items()}


def fill(name: str, **fields: str) -> str:
    """Fill a template with str.format; only the named fields are substituted."""
    return template(name).format(**fields)
