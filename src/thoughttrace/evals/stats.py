"""Confidence intervals, paired comparisons and correlations for eval summaries.

Rules every figure follows (so a table made with the toolkit cannot mislead a reader):
- a comparison of two conditions is an ABSOLUTE difference on the same items, with a paired bootstrap CI;
- a relative gain is given only for metrics on a positive ratio scale (`Scale.ratio`), and is labelled so;
  never when the baseline lies within 10% of the scale's floor (a mean of 0.5 on 0-100 would read +400%);
- every estimate carries its n, and one from fewer than SMALL_N items is marked `small` (text, JSON, HTML);
- every interval lies inside the metric's range (a cosine CI inside [-1, 1], a difference of cosines
  inside [-2, 2], a share inside [0, 1]);
- a figure that cannot be computed is an explicit null with its `reason`, never a silent drop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, computed_field

from thoughttrace.data.intervals import SMALL_CELL, Share, wilson_ci

__all__ = ["SCALES", "SMALL_CELL", "SMALL_N", "Estimate", "Scale", "Share", "agreement", "bootstrap_ci", "mean_ci",
           "paired_difference", "paired_relative_gain", "share_of_gain", "spread", "wilson_ci"]

#: bootstrap resamples (paired and single-sample) unless a caller asks for more
N_BOOT = 2000

#: an estimate (mean, difference, gain) from fewer distinct items than this is marked `small`
SMALL_N = 10

#: a relative gain is not reported when the baseline is within this fraction of the scale's width of its floor
NEAR_FLOOR = 0.10


class Scale(BaseModel):
    """The range of a metric and whether ratios of it mean something (a true zero, never negative)."""

    name: str
    low: float | None = None
    high: float | None = None
    ratio: bool = False

    def clip(self, value: float | None) -> float | None:
        if value is None:
            return None
        if self.low is not None:
            value = max(self.low, value)
        if self.high is not None:
            value = min(self.high, value)
        return value

    def difference(self) -> Scale:
        """The range of a difference of two values of this metric."""
        if self.low is None or self.high is None:
            return Scale(name=f"difference of {self.name}")
        width = self.high - self.low
        return Scale(name=f"difference of {self.name}", low=-width, high=width)

    @property
    def width(self) -> float | None:
        return None if self.low is None or self.high is None else self.high - self.low

    def near_floor(self, value: float) -> bool:
        """Whether `value` lies within NEAR_FLOOR of the range above the floor (a ratio to it would explode)."""
        if self.low is None or self.width is None:
            return False
        return value - self.low < NEAR_FLOOR * self.width

    def range_text(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"[{lo}, {hi}]"


#: the metrics the evals report, by their record field; one definition used by every summary
SCALES: dict[str, Scale] = {
    # judged similarity 0-100 (next message): 0 = nothing in common, a true zero; ratios are meaningful
    "score_0_100": Scale(name="judge score 0-100", low=0.0, high=100.0, ratio=True),
    # judged similarity 1-5 (thought inference): a Likert scale starting at 1, no true zero
    "score_1_5": Scale(name="judge score 1-5", low=1.0, high=5.0, ratio=False),
    "embedding_cosine": Scale(name="embedding cosine", low=-1.0, high=1.0, ratio=False),
    "share": Scale(name="share", low=0.0, high=1.0, ratio=True),
    # counts (words per message, messages per conversation): never negative, no upper end
    "count": Scale(name="count", low=0.0, high=None, ratio=True),
}

UNBOUNDED = Scale(name="unbounded")


class Estimate(BaseModel):
    """A point estimate with its 95% interval; `low`/`high` are None (with `reason`) when not computable.

    `items`: distinct items the interval was resampled over, when fewer than `n` (several records of one
    item); `small` (in every JSON dump) marks an estimate from fewer than SMALL_N distinct items.
    """

    mean: float | None
    low: float | None
    high: float | None
    n: int
    method: str = "t"
    reason: str | None = None
    items: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def small(self) -> bool:
        return (self.items if self.items is not None else self.n) < SMALL_N


def _clean(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return arr


def _bounded(est: Estimate, scale: Scale | None) -> Estimate:
    """The estimate with its interval clipped to the metric's range (and the method saying so when it was)."""
    if scale is None or (scale.low is None and scale.high is None) or est.low is None or est.high is None:
        return est
    low, high = scale.clip(est.low), scale.clip(est.high)
    if (low, high) != (est.low, est.high):
        return est.model_copy(update={"low": low, "high": high,
                                      "method": f"{est.method}, clipped to {scale.range_text()}"})
    return est


def mean_ci(values: Sequence[float | None], confidence: float = 0.95, scale: Scale | None = None) -> Estimate:
    """Mean with a Student-t interval inside the metric's range; None values (failed items) are left out."""
    from scipy import stats

    arr = _clean(values)
    n = int(arr.size)
    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0, reason="no scored items")
    mean = float(arr.mean())
    if n < 2:
        return Estimate(mean=mean, low=None, high=None, n=n, reason="one item: no interval")
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return _bounded(Estimate(mean=mean, low=mean - half, high=mean + half, n=n), scale)


def _resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """`n_boot` rows of `n` item indices drawn WITH replacement (the bootstrap's one random step)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def _percentile(boots: Sequence[float], confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    arr = np.asarray(boots, dtype=float)
    return float(np.quantile(arr, alpha)), float(np.quantile(arr, 1 - alpha))


def bootstrap_ci(
    values: Sequence[float | None],
    statistic: Callable[[np.ndarray], float] = lambda a: float(a.mean()),
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    seed: int = 0,
    scale: Scale | None = None,
) -> Estimate:
    """Percentile bootstrap interval of any statistic of one sample."""
    arr = _clean(values)
    n = int(arr.size)
    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0, method="bootstrap", reason="no scored items")
    point = statistic(arr)
    if n < 2:
        return Estimate(mean=point, low=None, high=None, n=n, method="bootstrap", reason="one item: no interval")
    boots = [statistic(arr[i]) for i in _resample_indices(n, n_boot, seed)]
    low, high = _percentile(boots, confidence)
    return _bounded(Estimate(mean=point, low=low, high=high, n=n, method="bootstrap"), scale)


def _paired_arrays(base: Sequence[float], treated: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    if len(base) != len(treated):
        raise ValueError(f"{what} needs the same items in both conditions ({len(base)} vs {len(treated)})")
    return np.asarray(base, dtype=float), np.asarray(treated, dtype=float)


def paired_difference(
    base: Sequence[float], treated: Sequence[float], *, scale: Scale | None = None, confidence: float = 0.95,
    n_boot: int = N_BOOT, seed: int = 0,
) -> Estimate:
    """mean(treated - base) over paired items with a paired bootstrap interval (pairs resampled together).

    `scale` is the metric's scale; the interval is kept inside the range of a difference of that metric.
    """
    b, t = _paired_arrays(base, treated, "paired_difference")
    n = int(b.size)
    method = "paired bootstrap"
    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0, method=method, reason="no paired items")
    d = t - b
    point = float(d.mean())
    if n < 2:
        return Estimate(mean=point, low=None, high=None, n=n, method=method, reason="one paired item: no interval")
    boots = d[_resample_indices(n, n_boot, seed)].mean(axis=1)
    low, high = _percentile(boots, confidence)
    return _bounded(Estimate(mean=point, low=low, high=high, n=n, method=method),
                    scale.difference() if scale is not None else None)


def paired_relative_gain(
    base: Sequence[float], treated: Sequence[float], *, scale: Scale, confidence: float = 0.95,
    n_boot: int = N_BOOT, seed: int = 0,
) -> Estimate:
    """Relative gain mean(treated)/mean(base) - 1 over paired items, with a paired bootstrap interval.

    Only for metrics on a positive ratio scale: on a scale that can be zero or negative (a cosine, a
    1-5 Likert score) a ratio of means is not interpretable, so this raises instead of printing one.
    """
    if not scale.ratio:
        raise ValueError(f"a relative gain is not defined for {scale.name} (not a positive ratio scale); "
                         "report the absolute difference (paired_difference)")
    b, t = _paired_arrays(base, treated, "paired_relative_gain")
    n = int(b.size)
    method = "paired bootstrap (ratio scale)"

    def gain(bb: np.ndarray, tt: np.ndarray) -> float:
        m = float(bb.mean())
        return float(tt.mean()) / m - 1 if m > 0 else float("nan")

    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0, method=method, reason="no paired items")
    point = gain(b, t)
    if math.isnan(point):
        return Estimate(mean=None, low=None, high=None, n=n, method=method, reason="baseline mean is 0")
    if scale.near_floor(float(b.mean())):
        return Estimate(mean=None, low=None, high=None, n=n, method=method,
                        reason=f"not reported: the baseline mean {float(b.mean()):.3g} is within "
                               f"{NEAR_FLOOR:.0%} of the floor of {scale.name} {scale.range_text()}, where a ratio "
                               "explodes; read the absolute difference")
    if n < 2:
        return Estimate(mean=point, low=None, high=None, n=n, method=method, reason="one paired item: no interval")
    boots = [g for idx in _resample_indices(n, n_boot, seed) if not math.isnan(g := gain(b[idx], t[idx]))]
    if len(boots) < 0.95 * n_boot:
        return Estimate(mean=point, low=None, high=None, n=n, method=method,
                        reason="the baseline mean is 0 in many resamples: no stable interval")
    low, high = _percentile(boots, confidence)
    return Estimate(mean=point, low=max(low, -1.0), high=high, n=n, method=method)


def share_of_gain(
    base: Sequence[float], partial: Sequence[float], full: Sequence[float], *, scale: Scale | None = None,
    min_gain: float | None = None, confidence: float = 0.95, n_boot: int = N_BOOT, seed: int = 0,
) -> Estimate:
    """How much of the full (oracle) gain over `base` the `partial` condition recovers, on paired items.

    (mean(partial) - mean(base)) / (mean(full) - mean(base)), with a paired bootstrap interval over items
    (all three conditions resampled together). When the oracle gain is ~0 (below `min_gain`, default 1%
    of the metric's range) the share is undefined: null with that reason. Resamples whose oracle gain
    falls below `min_gain` are left out; if that is more than 5% of them, the interval is null too.
    """
    if not (len(base) == len(partial) == len(full)):
        raise ValueError("share_of_gain needs the same items in all three conditions")
    b, p, f = (np.asarray(x, dtype=float) for x in (base, partial, full))
    n = int(b.size)
    method = "paired bootstrap"
    if min_gain is None:
        min_gain = 0.01 * scale.width if scale is not None and scale.width else 1e-9
    if n == 0:
        return Estimate(mean=None, low=None, high=None, n=0, method=method, reason="no items in all three conditions")
    full_gain = float((f - b).mean())
    if abs(full_gain) < min_gain:
        return Estimate(mean=None, low=None, high=None, n=n, method=method,
                        reason=f"the oracle gain is ~0 ({full_gain:+.4g}; below {min_gain:g}): no share to recover")
    if full_gain < 0:
        return Estimate(mean=None, low=None, high=None, n=n, method=method,
                        reason=f"the oracle condition does worse than the baseline ({full_gain:+.4g}): no gain to recover")
    point = float((p - b).mean()) / full_gain
    if n < 2:
        return Estimate(mean=point, low=None, high=None, n=n, method=method, reason="one item: no interval")
    boots = []
    for idx in _resample_indices(n, n_boot, seed):
        g = float((f[idx] - b[idx]).mean())
        if g >= min_gain:
            boots.append(float((p[idx] - b[idx]).mean()) / g)
    if len(boots) < 0.95 * n_boot:
        return Estimate(mean=point, low=None, high=None, n=n, method=method,
                        reason="the oracle gain is ~0 or negative in many resamples: no stable interval")
    low, high = _percentile(boots, confidence)
    return Estimate(mean=point, low=low, high=high, n=n, method=method)


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
