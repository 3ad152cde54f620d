from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.evals.stats import agreement, bootstrap_ci, mean_ci, paired_relative_gain


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


def test_paired_gain_detects_a_real_gain_and_its_interval_excludes_zero() -> None:
    base = [20.0, 25.0, 30.0, 22.0, 28.0, 21.0, 26.0, 24.0]
    treated = [b * 1.5 for b in base]
    est = paired_relative_gain(base, treated)
    assert est.mean == pytest.approx(0.5)
    assert est.low == pytest.approx(0.5) and est.high == pytest.approx(0.5)
    noisy = paired_relative_gain(base, [b + d for b, d in zip(base, [5, -4, 6, -3, 7, -5, 4, -6])])
    assert noisy.low is not None and noisy.low < 0.05 < noisy.high


def test_paired_gain_needs_pairs() -> None:
    with pytest.raises(ValueError):
        paired_relative_gain([1.0], [1.0, 2.0])


def test_agreement_perfect_inverse_and_constant() -> None:
    a = agreement([1, 2, 3, 4, 5], [2, 3, 4, 5, 6])
    assert a.pearson == pytest.approx(1.0) and a.spearman == pytest.approx(1.0) and a.mean_abs_diff == 1.0
    b = agreement([1, 2, 3, 4], [4, 3, 2, 1])
    assert b.spearman == pytest.approx(-1.0)
    c = agreement([3, 3, 3], [1, 2, None])
    assert c.n == 2 and c.pearson is None and not math.isnan(c.mean_abs_diff or 0)
