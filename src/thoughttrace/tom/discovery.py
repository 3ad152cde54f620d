"""Automated model discovery: find the smallest model (variables x timesteps) that answers confidently.

Utility U(M) = -H(P(query | M)) - alpha * |M| (entropy in nats, |M| = number of variables). Starting from
the initial model at the last timestep: extend backwards in time one step at a time until U reaches the
threshold; if it never does, greedily add the variable with the best utility gain while that gain
exceeds alpha (and stop as soon as U reaches the threshold). Published defaults: threshold -0.673 nats,
alpha 0.02. `evaluate` is any async function from a spec to a posterior, so the search is testable
without a model; `budget_ok` lets the caller stop the search when its call budget is spent, and an `evaluate` that
raises `BudgetExhausted` part-way is treated as not tried (the previous model is kept).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .inference import entropy


class BudgetExhausted(Exception):
    """Raised by an `evaluate` that ran out of its call budget mid-way; the search keeps its last model."""


DEFAULT_THRESHOLD = -0.673
DEFAULT_ALPHA = 0.02


@dataclass(frozen=True)
class ModelSpec:
    """Which variables, and from which timestep on (0 = the whole story; n_steps - 1 = the last step)."""

    variables: frozenset[str]
    start: int

    def describe(self) -> str:
        return f"{{{', '.join(sorted(self.variables))}}} from step {self.start}"


def utility(posterior: list[float], spec: ModelSpec, alpha: float = DEFAULT_ALPHA) -> float:
    return -entropy(posterior) - alpha * len(spec.variables)


@dataclass
class DiscoveryResult:
    spec: ModelSpec
    posterior: list[float]
    utility: float
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_because: str = ""


async def discover(
    initial: ModelSpec,
    evaluate: Callable[[ModelSpec], Awaitable[list[float]]],
    *,
    candidates: Iterable[str],
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    budget_ok: Callable[[], bool] = lambda: True,
) -> DiscoveryResult:
    history: list[dict[str, Any]] = []

    async def score(spec: ModelSpec, phase: str) -> tuple[list[float], float]:
        post = await evaluate(spec)
        u = utility(post, spec, alpha)
        history.append({"phase": phase, "model": spec.describe(), "variables": sorted(spec.variables),
                        "start": spec.start, "posterior": post, "utility": u})
        return post, u

    spec = initial
    post, u = await score(spec, "initial")
    while u < threshold and spec.start > 0:
        if not budget_ok():
            return DiscoveryResult(spec, post, u, history, "budget")
        nxt = replace(spec, start=spec.start - 1)
        try:
            npost, nu = await score(nxt, "extend-time")
        except BudgetExhausted:
            return DiscoveryResult(spec, post, u, history, "budget")
        spec, post, u = nxt, npost, nu
    if u >= threshold:
        return DiscoveryResult(spec, post, u, history, "threshold")
    pool = [v for v in candidates if v not in spec.variables]
    while pool:
        if not budget_ok():
            return DiscoveryResult(spec, post, u, history, "budget")
        trials = []
        for var in pool:
            cand = replace(spec, variables=spec.variables | {var})
            try:
                cpost, cu = await score(cand, f"try-add {var}")
            except BudgetExhausted:
                break
            trials.append((cu, var, cand, cpost))
        if not trials:
            return DiscoveryResult(spec, post, u, history, "budget")
        best_u, best_var, best_spec, best_post = max(trials, key=lambda t: t[0])
        if best_u - u <= alpha:
            return DiscoveryResult(spec, post, u, history, "gain-below-alpha")
        spec, post, u = best_spec, best_post, best_u
        history.append({"phase": "added", "variable": best_var, "utility": u})
        pool.remove(best_var)
        if u >= threshold:
            return DiscoveryResult(spec, post, u, history, "threshold")
    return DiscoveryResult(spec, post, u, history, "exhausted")
