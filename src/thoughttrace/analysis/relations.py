"""Analysis 4: how each user message relates to the previous one, by turn index.

The LLM labels (Deepen, Variant, Retry, New request) come from `thoughttrace label --kind relation` (or
`analyze --relations --model M`, which runs it); this module only counts. "End" is structural, not
labelled: a conversation whose last user message was turn t-1 contributes End at turn t. Turn t counts
the conversations that reached user turn t-1, so each turn's shares (End included) sum to 1 over the
labelled ones; unlabelled messages are reported, never guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from thoughttrace.data import Conversation
from thoughttrace.data.intervals import SMALL_CELL, share_cell

RELATION_LABELS = ("Deepen", "Variant", "Retry", "New request")
END = "End"
UNLABELLED = "(unlabelled)"


class RelationTurns:
    """Counts of relation labels per user-turn index (turn 2 = the second user message)."""

    def __init__(self, relations: Mapping[tuple[str, str], str], max_turn: int = 10) -> None:
        self.relations = relations
        self.max_turn = max_turn
        self.by_turn: dict[int, Counter[str]] = {t: Counter() for t in range(2, max_turn + 1)}
        self.overall: Counter[str] = Counter()
        self.conversations_with_labels = 0

    def add(self, conv: Conversation) -> None:
        users = [m for m in conv.messages if m.type == "user"]
        if not any((conv.id, m.id) in self.relations for m in users[1:]) and len(users) > 1:
            return  # not labelled at all: leave it out instead of counting it unlabelled
        self.conversations_with_labels += 1
        for t in range(2, self.max_turn + 1):
            if t <= len(users):
                label = self.relations.get((conv.id, users[t - 1].id), UNLABELLED)
            elif t == len(users) + 1:
                label = END
            else:
                break
            self.by_turn[t][label] += 1
            self.overall[label] += 1

    def result(self) -> dict[str, Any]:
        labels = list(RELATION_LABELS) + sorted(
            {k for k in self.overall if k not in RELATION_LABELS and k not in (END, UNLABELLED)}
        ) + [END]
        available = bool(self.relations)

        def table(c: Counter[str]) -> dict[str, Any]:
            n = sum(v for k, v in c.items() if k != UNLABELLED)
            return {"n": n, "unlabelled": c.get(UNLABELLED, 0), "counts": {k: c.get(k, 0) for k in labels},
                    "shares": {k: (c.get(k, 0) / n if n else 0.0) for k in labels},
                    "intervals": {k: share_cell(c.get(k, 0), n) for k in labels}, "small": n < SMALL_CELL}

        return {
            "available": available,
            "labels": labels,
            "conversations": self.conversations_with_labels,
            "overall": table(self.overall),
            "by_turn": [{"turn": t, **table(c)} for t, c in self.by_turn.items() if sum(c.values())],
            "release_turn2": {"Deepen": 0.59, "New request": 0.24, "Retry": 0.03, "Variant": 0.02, "End": 0.13},
        }
