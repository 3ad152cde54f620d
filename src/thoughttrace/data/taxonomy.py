"""The 7 reason, 5 reaction and 7 domain types, loaded from package data with their definitions."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml
from pydantic import BaseModel


class ThoughtType(BaseModel):
    label: str
    share: float
    definition: str


class Taxonomy(BaseModel):
    format_version: int
    reasons: list[ThoughtType]
    reactions: list[ThoughtType]
    domains: list[ThoughtType]

    def labels(self, kind: str) -> list[str]:
        """Labels of one kind: 'reasons', 'reactions' or 'domains'."""
        return [t.label for t in getattr(self, kind)]


@lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    text = resources.files("thoughttrace.data").joinpath("resources/taxonomy.yaml").read_text("utf-8")
    return Taxonomy.model_validate(yaml.safe_load(text))


REASON_LABELS: tuple[str, ...] = tuple(load_taxonomy().labels("reasons"))
REACTION_LABELS: tuple[str, ...] = tuple(load_taxonomy().labels("reactions"))
DOMAIN_LABELS: tuple[str, ...] = tuple(load_taxonomy().labels("domains"))
