from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.evals.stats import (
    SCALES,
    agreement,
    bootstrap_ci,
    mean_ci,
    paired_difference,
    paired_relative_gain,
    share_of_gain,
    wilson_ci,
)


def test_mean_ci_matches_the_t_formula() -> None:
    est = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert est.mean == pytest.approx(3.0)
    # sd = 1.5811, sem = 0.7071, t(0.975, 4) = 2.7764
    assert est.high - est.mean == pytest.approx(2.7764 * 0.70711, rel=1e-3)
    assert est.n == 5


def test_mean_ci_leaves_out_failed_items_and_handles_tiny_samples() -> None:
    assert mean_ci([None, None]).mean is None
    one = mean_ci([None, 2.0])
    assert one.mean == 2.0 and one.low is None and one.n == 1


@given(st.lists(st.floats(min_value=-100, max_value=100), min_size=2, max_size=30))
@settings(max_examples=50, deadline=None)
def test_ci_contains_the_mean(values: list[float]) -> None:
    est = mean_ci(values)
    assert est.low is not None and est.high is not None
    assert est.low <= est.mean + 1e-9 and est.mean <= est.high + 1e-9
    boot = bootstrap_ci(values, n_boot=200)
    assert boot.low <= boot.high


RATIO = SCALES["score_0_100"]
COS = SCALES["embedding_cosine"]


def test_paired_gain_detects_a_real_gain_and_its_interval_excludes_zero() -> None:
    base = [20.0, 25.0, 30.0, 22.0, 28.0, 21.0, 26.0, 24.0]
    treated = [b * 1.5 for b in base]
    est = paired_relative_gain(base, treated, scale=RATIO)
    assert est.mean == pytest.approx(0.5)
    assert est.low == pytest.approx(0.5) and est.high == pytest.approx(0.5)
    noisy = paired_relative_gain(base, [b + d for b, d in zip(base, [5, -4, 6, -3, 7, -5, 4, -6])], scale=RATIO)
    assert noisy.low is not None and noisy.low < 0.05 < noisy.high


def test_paired_gain_needs_pairs() -> None:
    with pytest.raises(ValueError):
        paired_relative_gain([1.0], [1.0, 2.0], scale=RATIO)
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0])


def test_no_relative_gain_on_a_scale_that_can_be_zero_or_negative() -> None:
    with pytest.raises(ValueError, match="not a positive ratio scale"):
        paired_relative_gain([0.02, 0.01], [0.1, 0.2], scale=COS)
    with pytest.raises(ValueError, match="not a positive ratio scale"):
        paired_relative_gain([2.0, 3.0], [3.0, 4.0], scale=SCALES["score_1_5"])


def test_paired_difference_is_the_mean_of_differences_with_a_bootstrap_interval() -> None:
    base = [0.10, 0.30, 0.20, 0.05, 0.40, 0.25, 0.15, 0.35, 0.22, 0.18]
    treated = [0.20, 0.32, 0.45, 0.10, 0.41, 0.50, 0.12, 0.60, 0.30, 0.19]
    est = paired_difference(base, treated, scale=COS, n_boot=20000)
    diffs = [t - b for b, t in zip(base, treated)]
    assert est.mean == pytest.approx(sum(diffs) / len(diffs))
    # an independent check: the normal-theory interval of the paired differences, computed by hand, with the sd
    # the bootstrap resamples from (divisor n: the bootstrap world is the sample itself). Within 10 %: the 90 %
    # interval is 16 % narrower, and a resampler that never draws the last pair moves the centre by 16 % of it
    m = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - m) ** 2 for d in diffs) / len(diffs))
    half = 1.96 * sd / math.sqrt(len(diffs))
    assert est.low is not None and est.high is not None
    assert est.low == pytest.approx(m - half, abs=0.1 * half) and est.high == pytest.approx(m + half, abs=0.1 * half)
    ninety = paired_difference(base, treated, scale=COS, n_boot=20000, confidence=0.90)
    assert ninety.low is not None and ninety.high is not None
    assert ninety.high - ninety.low == pytest.approx(1.645 / 1.96 * 2 * half, rel=0.1)


def test_the_bootstrap_really_resamples() -> None:
    """A 'bootstrap' that reuses the sample (no resampling) gives a zero-width interval; this one must not."""
    values = [float(v) for v in range(20)]
    boot = bootstrap_ci(values, n_boot=4000, seed=1)
    assert boot.low is not None and boot.high is not None
    # the bootstrap sd of the mean of 0..19 is 5.766/sqrt(20) = 1.289 (divisor n): a 95% interval is +-2.53;
    # a 90% one would be +-2.12, and one that never draws 19 is centred at 9.0, not 9.5
    assert boot.mean - boot.low == pytest.approx(2.53, abs=0.2) and boot.high - boot.mean == pytest.approx(2.53, abs=0.2)
    pd = paired_difference([0.0] * 20, values, n_boot=4000, seed=1)
    assert pd.low is not None and pd.high is not None
    assert pd.mean - pd.low == pytest.approx(2.53, abs=0.2) and pd.high - pd.mean == pytest.approx(2.53, abs=0.2)
    # different seeds draw different resamples
    assert bootstrap_ci(values, n_boot=200, seed=2).low != bootstrap_ci(values, n_boot=200, seed=3).low


@given(st.lists(st.tuples(st.floats(min_value=-1, max_value=1), st.floats(min_value=-1, max_value=1)),
                min_size=2, max_size=6))
@settings(max_examples=60, deadline=None)
def test_intervals_stay_inside_the_metric_range(pairs: list[tuple[float, float]]) -> None:
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    m = mean_ci(a, scale=COS)
    assert m.low is not None and m.high is not None and -1 <= m.low <= m.high <= 1
    d = paired_difference(a, b, scale=COS, n_boot=200)
    assert d.low is not None and d.high is not None and -2 <= d.low <= d.high <= 2


def test_mean_ci_at_n2_is_clipped_to_the_cosine_range() -> None:
    est = mean_ci([0.9, -0.8], scale=COS)  # the raw t interval is about [-10.7, 10.8]
    assert est.low == -1.0 and est.high == 1.0 and "clipped" in est.method


def test_share_of_oracle_gain_and_its_null_when_the_oracle_gain_is_zero() -> None:
    base = [20.0, 30.0, 25.0, 22.0, 28.0, 26.0]
    oracle = [b + 20 for b in base]
    partial = [b + 5 for b in base]
    est = share_of_gain(base, partial, oracle, scale=RATIO)
    assert est.mean == pytest.approx(0.25) and est.low == pytest.approx(0.25) and est.reason is None
    none = share_of_gain(base, partial, base, scale=RATIO)
    assert none.mean is None and none.reason is not None and "oracle gain is ~0" in none.reason
    worse = share_of_gain(base, partial, [b - 10 for b in base], scale=RATIO)
    assert worse.mean is None and worse.reason is not None and "does worse" in worse.reason


def test_wilson_interval_known_values_and_small_cells() -> None:
    four = wilson_ci(4, 4)  # "100%" at n=4: Wilson gives [0.510, 1]
    assert four.share == 1.0 and four.low == pytest.approx(0.5101, abs=1e-3) and four.high == 1.0 and four.small
    zero = wilson_ci(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.2775, abs=1e-3)
    mid = wilson_ci(50, 100)
    assert mid.low == pytest.approx(0.4038, abs=1e-3) and mid.high == pytest.approx(0.5962, abs=1e-3) and not mid.small
    assert wilson_ci(0, 0).share is None


def test_a_cell_of_exactly_the_small_cell_size_is_not_small() -> None:
    from thoughttrace.data.intervals import SMALL_CELL

    assert SMALL_CELL == 20  # "fewer than 20 items" is what the reports print
    assert wilson_ci(7, 19).small and not wilson_ci(7, 20).small and not wilson_ci(7, 21).small


def test_the_bootstrap_draws_every_item_including_the_last() -> None:
    # only the last item is non-zero: a resampler that never draws it gives a [0, 0] interval
    values = [0.0] * 19 + [1.0]
    for est in (bootstrap_ci(values, seed=0), paired_difference([0.0] * 20, values, seed=0)):
        assert est.low == 0.0 and est.high is not None and est.high >= 0.1
    gain = paired_relative_gain([20.0] * 20, [20.0] * 19 + [40.0], scale=RATIO, seed=0)  # baseline off the floor
    assert gain.high is not None and gain.high > 0


def test_agreement_perfect_inverse_and_constant() -> None:
    a = agreement([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
    assert a.pearson == pytest.approx(1.0) and a.spearman == pytest.approx(1.0) and a.mean_abs_diff == 1.0
    b = agreement([1, 2, 3, 4], [4, 3, 2, 1])
    assert b.spearman == pytest.approx(-1.0)
    c = agreement([3, 3, 3], [1, 2, None])
    assert c.n == 2 and c.pearson is None and not math.isnan(c.mean_abs_diff or 0)
