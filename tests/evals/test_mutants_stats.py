"""evals/stats.py rules that scripts/mutate.py found unprotected: the edges (0, 1 and 2 items), the ranges, the
near-floor rule for ratios, the default seed, and the min_gain threshold of the share of oracle gain.

Why: a figure at an edge must be an explicit null with its reason or a point without an interval, never a
NaN or a made-up interval; defaults must give the same numbers on every run (seed 0).
"""

from __future__ import annotations

import pytest

from thoughttrace.evals.stats import (
    SCALES,
    Estimate,
    agreement,
    bootstrap_ci,
    paired_difference,
    paired_relative_gain,
    share_of_gain,
)

COS = SCALES["embedding_cosine"]
JUDGE = SCALES["score_0_100"]


def test_the_range_of_a_difference_is_twice_the_width_either_way() -> None:
    d = COS.difference()
    assert (d.low, d.high) == (-2.0, 2.0) and d.name == "difference of embedding cosine"


def test_a_relative_gain_is_not_reported_near_the_floor_of_the_scale() -> None:
    near = paired_relative_gain([5.0, 6.0, 4.0], [9.0, 10.0, 8.0], scale=JUDGE)  # base mean 5 on 0-100
    assert near.mean is None and near.reason is not None and "within 10% of the floor" in near.reason
    far = paired_relative_gain([50.0, 60.0, 40.0], [55.0, 66.0, 44.0], scale=JUDGE)
    assert far.mean == pytest.approx(0.1) and far.reason is None
    assert JUDGE.near_floor(9.99) is True and JUDGE.near_floor(10.0) is False
    assert SCALES["count"].near_floor(0.0) is False  # no upper end: no width, so never "near the floor"


def test_every_estimate_dumps_its_items_and_small_flag() -> None:
    dumped = Estimate(mean=1.0, low=0.5, high=1.5, n=3).model_dump()
    assert dumped["items"] is None and dumped["small"] is True
    assert Estimate(mean=1.0, low=0.5, high=1.5, n=30, items=4).model_dump()["small"] is True


def test_one_item_gives_a_point_and_no_interval_zero_items_no_point() -> None:
    one = bootstrap_ci([0.7])
    assert (one.mean, one.low, one.high, one.n, one.reason) == (0.7, None, None, 1, "one item: no interval")
    d1 = paired_difference([0.2], [0.5])
    assert d1.mean == pytest.approx(0.3) and d1.low is None and d1.reason == "one paired item: no interval"
    d0 = paired_difference([], [])
    assert (d0.mean, d0.n, d0.reason) == (None, 0, "no paired items")


def test_the_default_seed_is_zero_so_every_run_prints_the_same_interval() -> None:
    # 30 distinct pairs: with 5 the percentiles of a few distinct resample means coincide across seeds
    base = [30.0 + i for i in range(30)]
    treated = [x * 1.1 + (i % 7) for i, x in enumerate(base)]
    assert paired_relative_gain(base, treated, scale=JUDGE, seed=1) != paired_relative_gain(base, treated, scale=JUDGE,
                                                                                             seed=0)
    assert paired_relative_gain(base, treated, scale=JUDGE) == paired_relative_gain(base, treated, scale=JUDGE, seed=0)
    assert paired_difference(base, treated) == paired_difference(base, treated, seed=0)


def test_share_of_gain_needs_the_same_items_in_all_three_conditions() -> None:
    with pytest.raises(ValueError, match="same items in all three conditions"):
        share_of_gain([1.0, 2.0], [1.0, 2.0], [1.0])


def test_share_of_gain_edges_zero_one_and_two_items() -> None:
    zero = share_of_gain([], [], [], scale=COS)
    assert (zero.mean, zero.n, zero.reason) == (None, 0, "no items in all three conditions")
    one = share_of_gain([0.1], [0.3], [0.5], scale=COS)
    assert one.mean == pytest.approx(0.5) and one.low is None and one.reason == "one item: no interval"
    two = share_of_gain([0.1, 0.2], [0.3, 0.3], [0.5, 0.6], scale=COS)
    assert two.mean == pytest.approx(0.375) and two.low is not None and two.high is not None


def test_a_small_positive_oracle_gain_is_a_gain() -> None:
    est = share_of_gain([0.1, 0.2, 0.3], [0.35, 0.45, 0.55], [0.6, 0.7, 0.8], scale=COS)  # oracle gain 0.5 < 1
    assert est.mean == pytest.approx(0.5) and est.reason is None


def test_the_min_gain_default_is_one_percent_of_the_metrics_range() -> None:
    # an oracle gain of 0.015 on a cosine (range width 2): below 0.02, so no share
    est = share_of_gain([0.1, 0.2], [0.11, 0.21], [0.115, 0.215], scale=COS)
    assert est.mean is None and est.reason is not None and "below 0.02" in est.reason


def test_resamples_at_exactly_min_gain_are_kept() -> None:
    est = share_of_gain([0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0, 1.0], min_gain=1.0)
    assert (est.mean, est.low, est.high) == (0.5, 0.5, 0.5)


def test_agreement_on_one_item_gives_its_absolute_difference_only() -> None:
    a = agreement([1.0], [3.0])
    assert (a.n, a.pearson, a.spearman, a.mean_abs_diff) == (1, None, None, 2.0)
    assert agreement([None], [2.0]).n == 0
