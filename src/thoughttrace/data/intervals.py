"""Wilson score intervals for shares: the one definition used by `data stats`, `analyze` and the evals.

A share computed from 4 items ("100%") is not a finding; every share the toolkit prints carries its n,
a Wilson 95% interval (inside [0, 1], sensible at k = 0 or k = n) and a `small` flag below SMALL_CELL.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

#: a share computed from fewer items than this is marked `small` (its Wilson interval is wide)
SMALL_CELL = 20


class Share(BaseModel):
    """k of n with a Wilson score interval; `small` marks a cell with fewer than SMALL_CELL items."""

    k: int
    n: int
    share: float | None
    low: float | None
    high: float | None
    small: bool
    method: str = "wilson"


def wilson_ci(k: int, n: int, confidence: float = 0.95) -> Share:
    """The Wilson score interval of a binomial share: inside [0, 1] and sensible at n = 4 or k = 0."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_ci needs 0 <= k <= n (got k={k}, n={n})")
    if n == 0:
        return Share(k=0, n=0, share=None, low=None, high=None, small=True)
    z = _z(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Share(k=k, n=n, share=p, low=low, high=high, small=n < SMALL_CELL)


def _z(confidence: float) -> float:
    """The two-sided normal quantile (1.959964 for 95%), without importing scipy into the data layer."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def share_cell(k: int, n: int) -> dict[str, object]:
    """`{k, n, share, low, high, small}` for a JSON output."""
    return wilson_ci(k, n).model_dump(exclude={"method"})
