"""Thought-type shares and stage curves recover what the synthetic generator planted."""

from __future__ import annotations

import pytest

from thoughttrace.analysis import StageCurves, TypeShares
from thoughttrace.data.synthetic import generate_conversations

REASONS = {"Task Motivation & Goal": 0.5, "Task Continuation": 0.3, "Style Expectation": 0.2}
REACTIONS = {"Explicit Affirmation": 0.7, "Scope Fit": 0.3}
STAGE_REASONS = [  # a planted trend: motivation falls, continuation rises
    {"Task Motivation & Goal": 0.8, "Task Continuation": 0.2},
    {"Task Motivation & Goal": 0.6, "Task Continuation": 0.4},
    {"Task Motivation & Goal": 0.3, "Task Continuation": 0.7},
    {"Task Motivation & Goal": 0.1, "Task Continuation": 0.9},
]
STAGE_REACTIONS = [
    {"Explicit Affirmation": 0.5, "Content Relevance": 0.5},
    {"Explicit Affirmation": 0.6, "Content Relevance": 0.4},
    {"Explicit Affirmation": 0.7, "Content Relevance": 0.3},
    {"Explicit Affirmation": 0.9, "Content Relevance": 0.1},
]


def test_overall_shares_are_recovered() -> None:
    acc = TypeShares()
    for conv in generate_conversations(1500, seed=3, reason_shares=REASONS, reaction_shares=REACTIONS):
        acc.add(conv)
    res = acc.result()
    for label, share in REASONS.items():
        assert res["reasons"]["shares"][label] == pytest.approx(share, abs=0.03)
    for label, share in REACTIONS.items():
        assert res["reactions"]["shares"][label] == pytest.approx(share, abs=0.03)
    # labels that were not planted are listed (taxonomy order) with zero counts
    assert res["reasons"]["counts"]["Social & Others"] == 0
    assert res["reasons"]["labels"][0] == "Task Motivation & Goal"
    assert sum(res["reasons"]["counts"].values()) == res["reasons"]["n"]


def test_shares_by_model_and_domain() -> None:
    acc = TypeShares()
    for conv in generate_conversations(400, seed=1, models=["A", "B"], domain_shares={"Technology": 1.0}):
        acc.add(conv)
    res = acc.result()["reasons"]
    assert set(res["by_model"]) == {"A", "B"}
    assert set(res["by_domain"]) == {"Technology"}
    assert res["by_model"]["A"]["n"] + res["by_model"]["B"]["n"] == res["n"]
    assert res["by_domain"]["Technology"]["n"] == res["n"]


def test_stage_trends_are_recovered() -> None:
    curves = StageCurves()
    for conv in generate_conversations(2500, seed=7, stage_reason_shares=STAGE_REASONS,
                                       stage_reaction_shares=STAGE_REACTIONS, length_range=(2, 16)):
        curves.add(conv)
    res = curves.result()
    assert res["stage_names"] == ["0%", "33%", "67%", "100%"]
    for stage, planted in enumerate(STAGE_REASONS):
        got = res["reasons"]["stages"][stage]["shares"]
        for label, share in planted.items():
            assert got[label] == pytest.approx(share, abs=0.05), (stage, label)
    for stage, planted in enumerate(STAGE_REACTIONS):
        got = res["reactions"]["stages"][stage]["shares"]
        for label, share in planted.items():
            assert got[label] == pytest.approx(share, abs=0.05), (stage, label)
    motivation = [s["shares"]["Task Motivation & Goal"] for s in res["reasons"]["stages"]]
    assert motivation == sorted(motivation, reverse=True)


def test_stage_count_is_configurable() -> None:
    curves = StageCurves(n_stages=3, position="conversation")
    for conv in generate_conversations(50, seed=0):
        curves.add(conv)
    res = curves.result()
    assert res["stage_names"] == ["0%", "50%", "100%"]
    assert len(res["reasons"]["stages"]) == 3
    assert res["position"] == "conversation"
    with pytest.raises(ValueError):
        StageCurves(n_stages=1)


def test_unlabelled_thoughts_are_counted_apart() -> None:
    convs = list(generate_conversations(30, seed=2))
    for c in convs:
        for m in c.messages:
            for t in m.reasons or []:
                t.label = None
    acc = TypeShares()
    for c in convs:
        acc.add(c)
    res = acc.result()
    assert res["reasons"]["n"] == 0
    assert res["reasons"]["unlabelled"] > 0
    assert all(v == 0.0 for v in res["reasons"]["shares"].values())


def _wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval, written out independently of thoughttrace.data.intervals."""
    import math

    z = 1.959963984540054
    p = k / n
    mid = (2 * n * p + z * z) / (2 * (n + z * z))
    rad = z * math.sqrt(z * z + 4 * n * p * (1 - p)) / (2 * (n + z * z))
    return max(0.0, mid - rad), min(1.0, mid + rad)


def test_every_share_carries_n_and_a_wilson_interval_and_small_cells_are_marked() -> None:
    from collections import Counter

    from thoughttrace.analysis.shares import share_table

    t = share_table(Counter({"A": 4}), ["A", "B"])
    assert t["n"] == 4 and t["small"] and t["shares"]["A"] == 1.0
    a, b = t["intervals"]["A"], t["intervals"]["B"]
    assert a["n"] == 4 and a["k"] == 4 and a["small"] and a["high"] == 1.0
    assert a["low"] == pytest.approx(_wilson_by_hand(4, 4)[0], abs=1e-9)
    assert b["low"] == 0.0 and b["high"] == pytest.approx(_wilson_by_hand(0, 4)[1], abs=1e-9)
    big = share_table(Counter({"A": 37, "B": 63}), ["A", "B"])
    assert not big["small"]
    for lab, k in (("A", 37), ("B", 63)):
        lo, hi = _wilson_by_hand(k, 100)
        assert big["intervals"][lab]["low"] == pytest.approx(lo, abs=1e-9)
        assert big["intervals"][lab]["high"] == pytest.approx(hi, abs=1e-9)
