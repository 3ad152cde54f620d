"""Analysis 1: the release's Table-1 figures and the distribution of messages per conversation.

Table 1 comes from `thoughttrace.data.stats` (one definition of the figures for `data stats` and
`analyze`); this module adds the length histogram and the comparison with other chat-log files
(e.g. WildChat or LMSYS-Chat-1M after `thoughttrace data import`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thoughttrace.data import DatasetError
from thoughttrace.data.stats import StatsAccumulator

#: the release's reference medians (SCHEMA.md): ThoughtTrace 8, WildChat and LMSYS-Chat-1M 2
RELEASE_MEDIANS = {"ThoughtTrace (release)": 8, "WildChat (release)": 2, "LMSYS-Chat-1M (release)": 2}


def length_summary(lengths: Mapping[int, int]) -> dict[str, Any]:
    """Histogram (messages -> conversations) plus median/mean/quartiles, computed from the counts."""
    n = sum(lengths.values())
    if n == 0:
        return {"n": 0, "histogram": {}, "median": 0.0, "mean": 0.0, "q1": 0.0, "q3": 0.0, "max": 0}
    values = sorted(lengths)

    def quantile(q: float) -> float:
        # linear interpolation between order statistics, like numpy's default
        pos = q * (n - 1)
        lo, frac = int(pos), pos - int(pos)
        return _at(lo) + frac * (_at(min(lo + 1, n - 1)) - _at(lo))

    def _at(rank: int) -> float:
        seen = 0
        for v in values:
            seen += lengths[v]
            if seen > rank:
                return float(v)
        return float(values[-1])

    return {
        "n": n,
        "histogram": {str(v): lengths[v] for v in values},
        "median": quantile(0.5),
        "mean": sum(v * c for v, c in lengths.items()) / n,
        "q1": quantile(0.25),
        "q3": quantile(0.75),
        "max": values[-1],
    }


def compare_lengths(path: str | Path, *, skip_invalid: bool = True) -> dict[str, Any]:
    """Messages-per-conversation of another chat-log file in the ThoughtTrace schema."""
    lengths: Counter[int] = Counter()
    try:
        from thoughttrace.data.exporters import iter_any

        for conv in iter_any(path, skip_invalid=skip_invalid):
            lengths[len(conv.messages)] += 1
    except DatasetError as exc:
        raise DatasetError(
            f"--compare {path}: {exc}. Compare files must be in the ThoughtTrace schema; convert a chat log "
            "first with `thoughttrace data import --from wildchat|lmsys|sharegpt|openai IN OUT`"
        ) from exc
    if not lengths:
        raise DatasetError(
            f"--compare {path}: no conversation in the ThoughtTrace schema in the file; convert a chat log "
            "first with `thoughttrace data import --from wildchat|lmsys|sharegpt|openai IN OUT`"
        )
    return length_summary(lengths)


def overview_result(acc: StatsAccumulator, compare: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    table1 = acc.result().model_dump(mode="json")
    return {
        "table1": table1,
        "messages_per_conversation": length_summary(acc.lengths),
        "compare": dict(compare or {}),
        "release_medians": RELEASE_MEDIANS,
    }
