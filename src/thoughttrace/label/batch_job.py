"""Labelling as a shard job for the batch engine (`thoughttrace label --engine ray`).

One shard's items are labelled exactly as `Labeler.label_file` labels them (same prompts, sliding window of
`batch_size` calls in flight, retries and records), so the shards of a Ray run, read in order, equal the local engine's labels file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from thoughttrace.data import Conversation
from thoughttrace.llm import Model
from thoughttrace.llm.window import ordered_window

from .items import extract_items
from .labeler import Labeler, LabelResult, Method


@dataclass(frozen=True)
class LabelShardJob:
    kinds: tuple[str, ...]
    method: Method = "generate"
    max_attempts: int = 3
    constrained: bool = True
    only_missing: bool = False
    batch_size: int = 16
    name: str = "label"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": self.name, "model": model_spec, "method": self.method, "kinds": list(self.kinds),
                "only_missing": self.only_missing, "constrained": self.constrained,
                "max_attempts": self.max_attempts}

    def run_shard(self, conversations: Iterable[Conversation], model: Model) -> tuple[list[dict[str, Any]],
                                                                                      dict[str, Any]]:
        labeler = Labeler(model, method=self.method, max_attempts=self.max_attempts, constrained=self.constrained)
        items = list(extract_items(conversations, self.kinds, only_missing=self.only_missing))
        records: list[dict[str, Any]] = []
        summary: dict[str, Any] = {"items": len(items), "skipped_done": 0, "labelled": 0, "unlabelled": 0,
                                   "by_kind": {}}
        for r in model.run(_window(labeler, items, self.batch_size)):
            records.append(r.record(model.spec, self.method))
            kind = summary["by_kind"].setdefault(r.item.kind, {})
            key = r.label or "(unlabelled)"
            kind[key] = kind.get(key, 0) + 1
            summary["labelled" if r.label else "unlabelled"] += 1
        return records, summary


async def _window(labeler: Labeler, items: list[Any], size: int) -> list[LabelResult]:
    """Every item labelled with `size` calls in flight (a sliding window: a new call starts as one ends)."""
    return [r async for r in ordered_window(labeler.alabel, items, size)]
