"""The release's dataset figures (its Table 1 and label shares), computed in one streaming pass.

Memory stays flat in the number of conversations: counters only, plus a Counter of conversation lengths
(for an exact median) and the set of distinct users (needed to count them exactly; it grows with the
number of users, one short string each, not with the file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .io import ReadReport
from .schema import Conversation
from .taxonomy import DOMAIN_LABELS, REACTION_LABELS, REASON_LABELS

STATS_FORMAT_VERSION = 1


class LabelShare(BaseModel):
    count: int
    share: float = Field(description="count / all labelled items of this kind (0 when there are none)")


class DatasetStats(BaseModel):
    """Figures of one dataset; `--json` prints exactly this model."""

    format_version: int = STATS_FORMAT_VERSION
    conversations: int = 0
    messages: int = Field(0, description="= turns: one message, user or assistant, is one turn")
    user_messages: int = 0
    assistant_messages: int = 0
    thoughts: int = 0
    reasons: int = 0
    reactions: int = 0
    unlabeled_reasons: int = 0
    unlabeled_reactions: int = 0
    users: int = 0
    models: int = 0
    median_messages_per_conversation: float = 0.0
    mean_messages_per_conversation: float = 0.0
    min_messages_per_conversation: int = 0
    max_messages_per_conversation: int = 0
    model_counts: dict[str, int] = Field(default_factory=dict)
    reason_labels: dict[str, LabelShare] = Field(default_factory=dict)
    reaction_labels: dict[str, LabelShare] = Field(default_factory=dict)
    domains: dict[str, LabelShare] = Field(default_factory=dict)
    conversations_without_domain: int = 0


def _shares(counts: Counter[str], known: Iterable[str]) -> dict[str, LabelShare]:
    """Known labels first in taxonomy order (zeros kept, so readers can index them), then others by count."""
    total = sum(counts.values())
    known = list(known)
    extra = sorted((k for k in counts if k not in known), key=lambda k: (-counts[k], k))
    return {k: LabelShare(count=counts[k], share=counts[k] / total if total else 0.0) for k in known + extra}


def _median(lengths: Mapping[int, int]) -> float:
    n = sum(lengths.values())
    if n == 0:
        return 0.0
    lo_rank, hi_rank = (n - 1) // 2, n // 2  # 0-based ranks of the middle one(s)
    seen, lo_val, hi_val = 0, None, None
    for value in sorted(lengths):
        seen += lengths[value]
        if lo_val is None and seen > lo_rank:
            lo_val = value
        if seen > hi_rank:
            hi_val = value
            break
    assert lo_val is not None and hi_val is not None
    return (lo_val + hi_val) / 2


class StatsAccumulator:
    """Add conversations one at a time; `result()` any time. Lets a caller wrap the stream (progress bars)."""

    def __init__(self) -> None:
        self.lengths: Counter[int] = Counter()
        self.user_messages = 0
        self.assistant_messages = 0
        self.reason_counts: Counter[str] = Counter()
        self.reaction_counts: Counter[str] = Counter()
        self.unlabeled_reasons = 0
        self.unlabeled_reactions = 0
        self.model_counts: Counter[str] = Counter()
        self.domain_counts: Counter[str] = Counter()
        self.no_domain = 0
        self.users: set[str] = set()

    def add(self, conv: Conversation | Any) -> None:
        """One conversation: a `Conversation`, or anything with its attributes (`data.fast` structs)."""
        msgs = conv.messages
        self.lengths[len(msgs)] += 1
        for m in msgs:
            if m.type == "user":
                self.user_messages += 1
                for t in m.reasons or ():
                    if t.label:
                        self.reason_counts[t.label] += 1
                    else:
                        self.unlabeled_reasons += 1
            else:
                self.assistant_messages += 1
                for t in m.reactions or ():
                    if t.label:
                        self.reaction_counts[t.label] += 1
                    else:
                        self.unlabeled_reactions += 1
        if conv.model_name:
            self.model_counts[conv.model_name] += 1
        if conv.domain:
            self.domain_counts[conv.domain] += 1
        else:
            self.no_domain += 1
        self.users.add(conv.user_key())

    def result(self) -> DatasetStats:
        n = sum(self.lengths.values())
        messages = self.user_messages + self.assistant_messages
        reasons = sum(self.reason_counts.values()) + self.unlabeled_reasons
        reactions = sum(self.reaction_counts.values()) + self.unlabeled_reactions
        return DatasetStats(
            conversations=n, messages=messages, user_messages=self.user_messages,
            assistant_messages=self.assistant_messages, thoughts=reasons + reactions, reasons=reasons,
            reactions=reactions, unlabeled_reasons=self.unlabeled_reasons,
            unlabeled_reactions=self.unlabeled_reactions, users=len(self.users), models=len(self.model_counts),
            median_messages_per_conversation=_median(self.lengths),
            mean_messages_per_conversation=messages / n if n else 0.0,
            min_messages_per_conversation=min(self.lengths) if n else 0,
            max_messages_per_conversation=max(self.lengths) if n else 0,
            model_counts=dict(sorted(self.model_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            reason_labels=_shares(self.reason_counts, REASON_LABELS),
            reaction_labels=_shares(self.reaction_counts, REACTION_LABELS),
            domains=_shares(self.domain_counts, DOMAIN_LABELS),
            conversations_without_domain=self.no_domain,
        )


def compute_stats(conversations: Iterable[Conversation | Any]) -> DatasetStats:
    """One pass over any iterable of conversations (a generator from `iter_conversations` keeps memory flat)."""
    acc = StatsAccumulator()
    for conv in conversations:
        acc.add(conv)
    return acc.result()


def stats_file(path: str | Path, *, skip_invalid: bool = False) -> tuple[DatasetStats, ReadReport]:
    """Stats of a JSONL file; strict unless `skip_invalid` (then the report lists the skipped lines).

    Every line is validated; the fast reader (`data.fast`, msgspec) does it without building pydantic
    models, and hands a line it cannot accept to pydantic for the verdict and the message.
    """
    from .fast import iter_validated

    report = ReadReport()
    return compute_stats(iter_validated(path, skip_invalid=skip_invalid, report=report)), report


def format_table(stats: DatasetStats) -> str:
    """A plain-text table for people (the release's Table 1 figures, then the label shares)."""
    rows: list[tuple[str, str]] = [
        ("conversations", f"{stats.conversations:,}"),
        ("messages (turns)", f"{stats.messages:,}"),
        ("  user messages", f"{stats.user_messages:,}"),
        ("  assistant messages", f"{stats.assistant_messages:,}"),
        ("thoughts", f"{stats.thoughts:,}"),
        ("  reasons", f"{stats.reasons:,}"),
        ("  reactions", f"{stats.reactions:,}"),
        ("users", f"{stats.users:,}"),
        ("models", f"{stats.models:,}"),
        ("messages / conversation (median)", f"{stats.median_messages_per_conversation:g}"),
        ("messages / conversation (mean)", f"{stats.mean_messages_per_conversation:.2f}"),
        ("messages / conversation (min-max)",
         f"{stats.min_messages_per_conversation}-{stats.max_messages_per_conversation}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v:>10}" for k, v in rows]
    for title, table in (("reason types", stats.reason_labels), ("reaction types", stats.reaction_labels),
                         ("domains", stats.domains)):
        lines.append("")
        lines.append(f"{title}:")
        if title == "domains" and stats.conversations_without_domain:
            lines[-1] += f" ({stats.conversations_without_domain:,} conversation(s) without one)"
        lw = max((len(k) for k in table), default=0)
        for label, ls in table.items():
            lines.append(f"  {label:<{lw}}  {ls.count:>8,}  {100 * ls.share:5.1f}%")
    if stats.model_counts:
        lines.append("")
        lines.append("models:")
        mw = max(len(k) for k in stats.model_counts)
        for name, count in stats.model_counts.items():
            lines.append(f"  {name:<{mw}}  {count:>8,}")
    return "\n".join(lines)
