"""Nothing misleading in a table a paper copies: no relative gain near a scale's floor, n and a `small` mark on
every difference from fewer than 10 items (text and JSON), intervals inside the metric's range (word counts >= 0)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.evals.next_message import gains
from thoughttrace.evals.stats import (
    SCALES,
    SMALL_N,
    Estimate,
    mean_ci,
    paired_difference,
    paired_relative_gain,
)
from thoughttrace.evals.summary import SMALL_NOTE, fmt_estimate, markdown_table

SCORE, SHARE = SCALES["score_0_100"], SCALES["share"]


@pytest.mark.parametrize("scale,base,reported", [
    (SCORE, [0.0, 1.0, 0.5, 0.5], False),     # mean 0.5 on 0-100: +400% would be printed
    (SCORE, [9.0, 10.0, 10.5, 9.5], False),   # 9.75 < 10% of 100
    (SCORE, [10.0, 11.0, 10.5, 10.5], True),  # 10.5: far enough from the floor
    (SHARE, [0.05, 0.04, 0.06, 0.05], False),  # a 0-1 scale alike
    (SHARE, [0.2, 0.3, 0.25, 0.25], True),
])
def test_no_relative_gain_near_the_floor(scale: Any, base: list[float], reported: bool) -> None:
    treated = [2.5 * b + 0.01 for b in base]
    est = paired_relative_gain(base, treated, scale=scale)
    assert (est.mean is not None) is reported
    if not reported:
        assert est.reason and "floor" in est.reason and "absolute difference" in est.reason


def test_an_n3_difference_that_excludes_zero_is_marked_small_in_text_and_json() -> None:
    est = paired_difference([10.0, 12.0, 11.0], [30.0, 35.0, 31.0], scale=SCORE)
    assert est.low is not None and est.low > 0  # "significant" on 3 items
    dumped = est.model_dump()
    assert dumped["small"] is True and dumped["n"] == 3
    assert json.loads(est.model_dump_json())["small"] is True
    assert "(small, n=3)" in fmt_estimate(dumped)
    table = markdown_table([{"difference": dumped}], ["difference"])
    assert "(small, n=3)" in table and SMALL_NOTE in table
    big = paired_difference(list(range(SMALL_N)), [x + 5 for x in range(SMALL_N)], scale=SCORE).model_dump()
    assert big["small"] is False and "small" not in fmt_estimate(big)
    assert SMALL_NOTE not in markdown_table([{"difference": big}], ["difference"])


def test_a_ci_from_few_distinct_items_is_small_even_with_many_records() -> None:
    assert Estimate(mean=1.0, low=0.5, high=1.5, n=40, items=4).small
    assert "4 items" in fmt_estimate(Estimate(mean=1.0, low=0.5, high=1.5, n=40, items=4))


def _rec(msg: int, cond: str, score: float) -> dict[str, Any]:
    return {"model": "m", "condition": cond, "conversation_id": "c", "message_id": f"m{msg}", "score": score,
            "embedding_cosine": None}


def test_next_message_gains_carry_n_small_and_no_gain_near_the_floor() -> None:
    recs = [_rec(i, "history", 0.5) for i in range(4)] + [_rec(i, "reaction", 2.5) for i in range(4)]
    (row,) = gains(recs, "score")
    assert row["n"] == 4 and row["difference"]["n"] == 4 and row["difference"]["small"] is True
    assert row["relative_gain"]["mean"] is None and "floor" in row["relative_gain"]["reason"]
    recs = [_rec(i, "history", 40.0 + i % 3) for i in range(12)] + [_rec(i, "reaction", 50.0 + i % 2)
                                                                     for i in range(12)]
    (row,) = gains(recs, "score")
    assert row["difference"]["small"] is False and row["relative_gain"]["mean"] == pytest.approx(0.22, abs=0.03)


def test_word_counts_never_get_a_negative_lower_bound(tmp_path: Path) -> None:
    from thoughttrace.data import Conversation
    from thoughttrace.evals.simulator_eval import describe

    words = [1, 1, 1, 2, 120]  # skewed: a t interval reaches below 0
    assert (mean_ci(words).low or 0) < 0
    conv = Conversation.model_validate({"id": "c1", "messages": [
        {"id": f"u{i}", "type": "user", "content": " ".join(["w"] * k)} for i, k in enumerate(words)]})
    d = describe([conv])
    w = d["words_per_user_message"]
    assert w["low"] == 0.0 and "clipped to [0, inf]" in w["method"] and w["high"] > w["mean"] > 0


def test_the_next_message_markdown_marks_small_and_says_why_a_gain_is_withheld() -> None:
    from thoughttrace.evals.next_message import summarise

    recs = [_rec(i, "history", 0.5) for i in range(4)] + [_rec(i, "reaction", 2.5) for i in range(4)]
    summary, md = summarise(recs, {}, {"embeddings": None})
    assert "2.000 [2.000, 2.000] (small, n=4)" in md and SMALL_NOTE in md
    assert "Relative gain withheld" in md and "within 10% of the floor" in md and "+400" not in md
    assert summary["gains"][0]["difference"]["small"] is True
