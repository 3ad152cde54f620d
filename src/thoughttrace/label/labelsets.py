"""The label sets a model chooses from, with definitions and few-shot examples (package data files).

Kinds: `reason` and `reaction` (the release's 7 + 5 thought types), `domain` (7 domains) from the dataset
core's taxonomy.yaml, and `relation` (Deepen, Variant, Retry, New request) from relations.yaml here.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel

from thoughttrace.data.taxonomy import load_taxonomy

KINDS = ("reason", "reaction", "domain", "relation")


class LabelDef(BaseModel):
    label: str
    definition: str


class LabelSet(BaseModel):
    kind: str
    labels: list[LabelDef]
    examples: list[dict[str, Any]]

    @property
    def names(self) -> list[str]:
        return [d.label for d in self.labels]


def _read_yaml(name: str) -> dict[str, Any]:
    text = resources.files("thoughttrace.label").joinpath(name).read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


@cache
def get_label_set(kind: str) -> LabelSet:
    """The allowed labels of one kind, with definitions and examples."""
    if kind not in KINDS:
        raise ValueError(f"unknown label kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "relation":
        defs = [LabelDef(**d) for d in _read_yaml("relations.yaml")["relations"]]
    else:
        tax = load_taxonomy()
        group = {"reason": tax.reasons, "reaction": tax.reactions, "domain": tax.domains}[kind]
        defs = [LabelDef(label=t.label, definition=t.definition) for t in group]
    examples = list(_read_yaml("examples.yaml").get(kind, []))
    names = {d.label for d in defs}
    bad = [e["label"] for e in examples if e["label"] not in names]
    if bad:
        raise ValueError(f"examples.yaml: {kind} examples use labels outside the set: {bad}")
    return LabelSet(kind=kind, labels=defs, examples=examples)
