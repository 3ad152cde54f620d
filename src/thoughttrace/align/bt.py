"""Bradley-Terry scores from pairwise verdicts, with style control and bootstrap confidence intervals.

Model: P(first beats second) = sigmoid(theta_first - theta_second + gamma . style_diff), fitted by
weighted logistic regression (Newton / IRLS, a tiny ridge for games one side always wins). Ties enter as
half a win (y = 0.5); strong verdicts as extra weight. The baseline's theta is fixed at 0, so
sigmoid(theta_m) is model m's predicted win rate against the baseline, Arena-Hard's headline number.
With `style=True` the style coefficients gamma absorb what length and Markdown explain, and theta is
the style-controlled strength (arena-hard-auto's style control).
Inference (numpy) is separate from the data plumbing, so it is tested on synthetic games with known
strengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .style import STYLE_FEATURES


@dataclass
class Games:
    """Pairwise games as arrays; `group` (e.g. question index) is the bootstrap resampling unit."""

    first: np.ndarray  # model index of the first-listed answer
    second: np.ndarray
    y: np.ndarray  # 1 first won, 0 second won, 0.5 tie
    weight: np.ndarray
    style: np.ndarray  # (n, k) style differences first - second
    group: np.ndarray
    models: list[str]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: np.ndarray) -> Games:
        return Games(self.first[idx], self.second[idx], self.y[idx], self.weight[idx], self.style[idx],
                     self.group[idx], self.models)


@dataclass
class BTFit:
    models: list[str]
    baseline: str
    theta: np.ndarray  # per model, baseline 0
    gamma: np.ndarray  # style coefficients (empty without style control)
    converged: bool

    def win_rate(self, model: str) -> float:
        """Predicted probability that `model` beats the baseline (style held equal under style control)."""
        return float(1.0 / (1.0 + np.exp(-self.theta[self.models.index(model)])))


def _style_sd(style: np.ndarray) -> np.ndarray:
    """Each style feature's spread over the games: the design divides by it and the fit's coefficients are
    reported back per raw unit with the same numbers (a constant feature keeps scale 1, never a division by 0)."""
    sd = style.std(axis=0)
    sd[sd < 1e-12] = 1.0
    return sd


def _design(games: Games, baseline_idx: int, style: bool) -> np.ndarray:
    n, m = len(games), len(games.models)
    x = np.zeros((n, m))
    rows = np.arange(n)
    x[rows, games.first] += 1.0
    x[rows, games.second] -= 1.0
    x = np.delete(x, baseline_idx, axis=1)
    if style:
        x = np.hstack([x, games.style / _style_sd(games.style)])  # scaled, not centred: centring would act as an order intercept
    return x


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 1e-3, max_iter: int = 100,
                 tol: float = 1e-9, offset: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """Weighted logistic regression without intercept, fractional targets allowed (Newton's method).

    `offset` is a fixed part of the linear predictor (frozen style coefficients times the style features).
    """
    beta = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    off = np.zeros(x.shape[0]) if offset is None else offset
    for _ in range(max_iter):
        z = np.clip(x @ beta + off, -35, 35)
        p = 1.0 / (1.0 + np.exp(-z))
        grad = x.T @ (w * (y - p)) - ridge * beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            return beta, True
    return beta, False


def fit_bt(games: Games, baseline: str, *, style: bool = False, ridge: float = 1e-3,
           fixed_gamma: np.ndarray | None = None) -> BTFit:
    """Fit Bradley-Terry (optionally with style covariates); theta[baseline] = 0.

    `fixed_gamma` (per raw unit of the style difference, as `BTFit.gamma` reports it) freezes the style
    coefficients: only the strengths are fitted, so adding a model cannot move the others' style-controlled
    scores through a refitted gamma.
    """
    if baseline not in games.models:
        raise ValueError(f"baseline {baseline!r} is not among the models {games.models}")
    b = games.models.index(baseline)
    if fixed_gamma is not None:
        fixed = np.asarray(fixed_gamma, dtype=float)
        if fixed.shape != (games.style.shape[1],):
            raise ValueError(f"frozen style coefficients: expected {games.style.shape[1]} values "
                             f"({', '.join(STYLE_FEATURES)}), got {fixed.shape}")
        x = _design(games, b, False)
        beta, ok = fit_logistic(x, games.y, games.weight, ridge=ridge, offset=games.style @ fixed)
        return BTFit(list(games.models), baseline, np.insert(beta, b, 0.0), fixed, ok)
    x = _design(games, b, style)
    beta, ok = fit_logistic(x, games.y, games.weight, ridge=ridge)
    m = len(games.models) - 1
    theta = np.insert(beta[:m], b, 0.0)
    gamma = beta[m:] if style else np.zeros(0)
    if style:
        # gamma per standardised feature; report it per raw unit of the normalised difference
        gamma = gamma / _style_sd(games.style)
    return BTFit(list(games.models), baseline, theta, gamma, ok)


@dataclass
class Interval:
    estimate: float
    low: float
    high: float


@dataclass
class BootstrapResult:
    point: BTFit
    win_rate: dict[str, Interval] = field(default_factory=dict)
    theta: dict[str, Interval] = field(default_factory=dict)
    samples: int = 0


def bootstrap_bt(games: Games, baseline: str, *, style: bool = False, samples: int = 200, seed: int = 0,
                 level: float = 0.95, fixed_gamma: np.ndarray | None = None) -> BootstrapResult:
    """Point fit plus percentile CIs from resampling whole groups (questions) with replacement."""
    point = fit_bt(games, baseline, style=style, fixed_gamma=fixed_gamma)
    rng = np.random.default_rng(seed)
    groups = np.unique(games.group)
    by_group = [np.flatnonzero(games.group == g) for g in groups]
    thetas = np.empty((samples, len(games.models)))
    for s in range(samples):
        pick = rng.integers(0, len(groups), len(groups))
        idx = np.concatenate([by_group[i] for i in pick])
        thetas[s] = fit_bt(games.subset(idx), baseline, style=style, fixed_gamma=fixed_gamma).theta
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    res = BootstrapResult(point=point, samples=samples)
    for i, name in enumerate(games.models):
        t = thetas[:, i]
        wr = 1.0 / (1.0 + np.exp(-np.clip(t, -35, 35)))
        res.theta[name] = Interval(float(point.theta[i]), float(np.percentile(t, lo_q)), float(np.percentile(t, hi_q)))
        res.win_rate[name] = Interval(point.win_rate(name), float(np.percentile(wr, lo_q)),
                                      float(np.percentile(wr, hi_q)))
    return res


def games_from_arrays(models: Sequence[str], first: Sequence[int], second: Sequence[int], y: Sequence[float],
                      weight: Sequence[float] | None = None, style: np.ndarray | None = None,
                      group: Sequence[int] | None = None) -> Games:
    n = len(y)
    return Games(
        first=np.asarray(first, dtype=int), second=np.asarray(second, dtype=int), y=np.asarray(y, dtype=float),
        weight=np.ones(n) if weight is None else np.asarray(weight, dtype=float),
        style=np.zeros((n, len(STYLE_FEATURES))) if style is None else np.asarray(style, dtype=float),
        group=np.arange(n) if group is None else np.asarray(group, dtype=int), models=list(models),
    )
