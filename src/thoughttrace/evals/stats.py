"""Confidence intervals and correlations for eval summaries (small samples: t-intervals and bootstrap)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel


class Estimate(BaseModel):
    """A mean with its 95% confidence interval; `low`/`high` are None when n < 2."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    method: str = "t"


def _clean(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return arr


def mean_ci(values: Sequence[float | None], confidence: float = 0.95) -> Estimate:
    """Mean with a Student-t interval; None values (failed items) are left out."""
    from scipy import stats

    arr = _clean(values)
    n = int(arr.size)
    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0)
    mean = float(arr.mean())
    if n < 2:
        return Estimate(mean=mean, low=None, high=None, n=n)
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return Estimate(mean=mean, low=mean - half, high=mean + half, n=n)


def bootstrap_ci(
    values: Sequence[float | None],
    statistic: Callable[[np.ndarray], float] = lambda a: float(a.mean()),
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap interval of any statistic of one sample."""
    arr = _clean(values)
    n = int(arr.size)
    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0, method="bootstrap")
    point = statistic(arr)
    if n < 2:
        return Estimate(mean=point, low=None, high=None, n=n, method="bootstrap")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([statistic(arr[i]) for i in idx])
    alpha = (1 - confidence) / 2
    return Estimate(
        mean=point, low=float(np.quantile(boots, alpha)), high=float(np.quantile(boots, 1 - alpha)), n=n,
        method="bootstrap",
    )


def paired_relative_gain(
    base: Sequence[float], treated: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Estimate:
    """Relative gain mean(treated)/mean(base) - 1 over paired items, with a paired bootstrap interval.

    Pairs are resampled together, so the interval reflects that both conditions saw the same items.
    """
    if len(base) != len(treated):
        raise ValueError("paired_relative_gain needs the same items in both conditions")
    b = np.asarray(base, dtype=float)
    t = np.asarray(treated, dtype=float)
    n = int(b.size)

    def gain(bb: np.ndarray, tt: np.ndarray) -> float:
        m = float(bb.mean())
        return float(tt.mean()) / m - 1 if m != 0 else float("nan")

    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0, method="paired bootstrap")
    point = gain(b, t)
    point_v: float | None = None if math.isnan(point) else point
    if n < 2:
        return Estimate(mean=point_v, low=None, high=None, n=n, method="paired bootstrap")
    rng = np.random.default_rng(seed)
    boots = []
    for idx in rng.integers(0, n, size=(n_boot, n)):
        g = gain(b[idx], t[idx])
        if not math.isnan(g):
            boots.append(g)
    if not boots:
        return Estimate(mean=point_v, low=None, high=None, n=n, method="paired bootstrap")
    alpha = (1 - confidence) / 2
    return Estimate(
        mean=point_v, low=float(np.quantile(boots, alpha)), high=float(np.quantile(boots, 1 - alpha)), n=n,
        method="paired bootstrap",
    )


class Agreement(BaseModel):
    """How two judges agree on the same items."""

    n: int
    pearson: float | None
    spearman: float | None
    mean_abs_diff: float | None


def agreement(a: Sequence[float | None], b: Sequence[float | None]) -> Agreement:
    """Pearson, Spearman and mean absolute difference over items both judges scored."""
    from scipy import stats

    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return Agreement(n=0, pearson=None, spearman=None, mean_abs_diff=None)
    xs = np.array([p[0] for p in pairs], dtype=float)
    ys = np.array([p[1] for p in pairs], dtype=float)
    mad = float(np.abs(xs - ys).mean())
    if n < 3 or xs.std() == 0 or ys.std() == 0:
        return Agreement(n=n, pearson=None, spearman=None, mean_abs_diff=mad)
    return Agreement(
        n=n,
        pearson=float(stats.pearsonr(xs, ys).statistic),
        spearman=float(stats.spearmanr(xs, ys).statistic),
        mean_abs_diff=mad,
    )


def spread(values: Sequence[float]) -> float | None:
    """Sample standard deviation (None for fewer than two values)."""
    if len(values) < 2:
        return None
    return float(np.std(np.asarray(values, dtype=float), ddof=1))
