"""`align rewrite` as a shard job for the batch engine (`align rewrite --engine ray`).

A shard's conversations give their rewrite targets exactly as `rewrite_conversations` selects them, and
each target is rewritten by `arewrite` (same prompt, leak guard and row), so the shards read in order are
the local engine's rewrites file, in target order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from thoughttrace.data import Conversation
from thoughttrace.llm import Model

from .rewrite import RewriteSettings, arewrite, select_targets


@dataclass(frozen=True)
class RewriteShardJob:
    #: RewriteSettings as a plain dict (picklable and part of the fingerprint)
    settings: dict[str, Any]
    name: str = "align-rewrite"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": self.name, "model": model_spec, "settings": self.settings}

    def run_shard(self, conversations: Iterable[Conversation], model: Model) -> tuple[list[dict[str, Any]],
                                                                                      dict[str, Any]]:
        settings = RewriteSettings.model_validate(self.settings)
        need_next = settings.require_next_message or settings.guide == "messages"  # that guide IS the next message
        targets = select_targets(conversations, settings.reactions, need_next)
        rows = model.run(arewrite(targets, model, settings, progress=False))
        return ([r.model_dump(mode="json") for r in rows],
                {"targets": len(targets), "rewrites": len(rows), "truncated": sum(r.truncated for r in rows)})
