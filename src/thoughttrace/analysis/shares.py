"""Thought-type shares: overall, by model and by domain (analysis 2), and over conversation stages (analysis 3).

Both are streaming accumulators (counters only), so 100k conversations cost a few MB.

Stages follow the release's split at 0/33/67/100% of a conversation: a thought's message gets the
position k/(K-1) among the K messages of its own role (user messages for reasons, assistant messages
for reactions; so the first reply's reactions sit at 0% just as the first prompt's reasons do) and is
assigned to the nearest of `n_stages` evenly spaced points, with `thoughttrace.data.stages`, the one
definition of that split (eval simulator uses it too). `position="conversation"` uses the position among all
messages instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, Literal

from thoughttrace.data import Conversation
from thoughttrace.data.intervals import SMALL_CELL, share_cell
from thoughttrace.data.stages import message_stages, stage_names
from thoughttrace.data.taxonomy import load_taxonomy

THOUGHT_KINDS = ("reasons", "reactions")
UNKNOWN = "(unknown)"


def ordered_labels(kind: str, counts: Iterable[str]) -> list[str]:
    """Taxonomy labels first (taxonomy order), then any other label seen, alphabetically."""
    known = load_taxonomy().labels(kind)
    extra = sorted({c for c in counts if c not in known})
    return known + extra


def share_table(counts: Counter[str], labels: list[str]) -> dict[str, Any]:
    """n, counts and shares of one table, with a Wilson 95% interval per share (`small` below SMALL_CELL)."""
    total = sum(counts.values())
    return {
        "n": total,
        "counts": {lab: counts.get(lab, 0) for lab in labels},
        "shares": {lab: (counts.get(lab, 0) / total if total else 0.0) for lab in labels},
        "intervals": {lab: share_cell(counts.get(lab, 0), total) for lab in labels},
        "small": total < SMALL_CELL,
    }


class TypeShares:
    """Counts of reason and reaction labels, overall and split by model and domain."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {k: Counter() for k in THOUGHT_KINDS}
        self.unlabelled: Counter[str] = Counter()
        self.by_model: dict[str, dict[str, Counter[str]]] = {k: defaultdict(Counter) for k in THOUGHT_KINDS}
        self.by_domain: dict[str, dict[str, Counter[str]]] = {k: defaultdict(Counter) for k in THOUGHT_KINDS}

    def add(self, conv: Conversation) -> None:
        model = conv.model_name or UNKNOWN
        domain = conv.domain or UNKNOWN
        for m in conv.messages:
            kind = "reasons" if m.type == "user" else "reactions"
            for t in (m.reasons if m.type == "user" else m.reactions) or ():
                if not t.label:
                    self.unlabelled[kind] += 1
                    continue
                self.counts[kind][t.label] += 1
                self.by_model[kind][model][t.label] += 1
                self.by_domain[kind][domain][t.label] += 1

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in THOUGHT_KINDS:
            labels = ordered_labels(kind, self.counts[kind])
            ref = {t.label: t.share / 100 for t in getattr(load_taxonomy(), kind)}
            out[kind] = {
                "labels": labels,
                **share_table(self.counts[kind], labels),
                "unlabelled": self.unlabelled[kind],
                "release_shares": {lab: ref.get(lab) for lab in labels},
                "by_model": {g: share_table(c, labels) for g, c in _by_size(self.by_model[kind])},
                "by_domain": {g: share_table(c, labels) for g, c in _by_size(self.by_domain[kind])},
            }
        return out


def _by_size(groups: dict[str, Counter[str]]) -> list[tuple[str, Counter[str]]]:
    return sorted(groups.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))


class StageCurves:
    """Label counts per conversation stage, for reasons and reactions."""

    def __init__(self, n_stages: int = 4, position: Literal["role", "conversation"] = "role") -> None:
        self.names = stage_names(n_stages)
        self.n_stages = n_stages
        if position not in ("role", "conversation"):
            raise ValueError("stage position must be 'role' or 'conversation'")
        self.position = position
        self.counts: dict[str, list[Counter[str]]] = {k: [Counter() for _ in range(n_stages)] for k in THOUGHT_KINDS}

    def add(self, conv: Conversation) -> None:
        stages = message_stages(conv, self.n_stages, self.position)
        for m, stage in zip(conv.messages, stages):
            kind = "reasons" if m.type == "user" else "reactions"
            for t in (m.reasons if m.type == "user" else m.reactions) or ():
                if t.label:
                    self.counts[kind][stage][t.label] += 1

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_stages": self.n_stages, "stage_names": self.names, "position": self.position,
                               "binning": "nearest of evenly spaced points 0..100%, ties up (data.stages.stage_bin)"}
        for kind in THOUGHT_KINDS:
            seen: Counter[str] = Counter()
            for c in self.counts[kind]:
                seen.update(c)
            labels = ordered_labels(kind, seen)
            out[kind] = {"labels": labels, "stages": [share_table(c, labels) for c in self.counts[kind]]}
        return out
