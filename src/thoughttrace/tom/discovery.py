"""Automated model discovery: find the smallest model (variables x timesteps) that answers confidently.

Utility U(M) = -H(P(query | M)) - alpha * |M| (entropy in nats, |M| = number of variables). Published defaults:
threshold -0.673 nats, alpha 0.02. Two search rules:

- "method" (default), the method's: the search stops as soon as the answer is confident, -H >= threshold
  (-0.673 = -H(0.6, 0.4): a two-way answer at 60 % or more); from the initial model at the last timestep it
  greedily adds the variable with the best utility while U rises (so a variable must buy more than alpha of
  certainty), and when the variables cannot make the answer confident it includes the previous timestep and
  adjusts the variables again, back to the first step. Adding a variable at the last step costs that one
  step's factors, so a question the last step answers never pays for the whole story.
- "v2" (engine v2 before; for replaying old runs): back to the first step before any variable is tried, so
  every trial paid for every step, and the stop compared U, alpha * |M| included, with the threshold (a
  four-variable model then needed 71 %, not 60 %, to stop).

`evaluate` is any async function from a spec to a posterior, so the search is testable without a model;
`budget_ok` lets the caller stop the search when its call budget is spent, and an `evaluate` that raises
`BudgetExhausted` part-way is treated as not tried (the previous model is kept).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .inference import entropy


class BudgetExhausted(Exception):
    """Raised by an `evaluate` that ran out of its call budget mid-way; the search keeps its last model."""


DEFAULT_THRESHOLD = -0.673
DEFAULT_ALPHA = 0.02
SearchRule = Literal["method", "v2"]


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
    repair: Callable[[frozenset[str]], frozenset[str]] = lambda v: v,
    rule: SearchRule = "method",
) -> DiscoveryResult:
    """Search from `initial` by the utility; `repair` maps a proposed variable set onto the nearest valid
    model (e.g. Goal brings its Action), so every model tried can answer the query.

    The greedy step accepts the best candidate when its utility is higher than the current one: alpha is
    already inside U (alpha per variable), so it is not charged a second time. Candidates are evaluated one
    after another (each model's factors concurrently) so that where a budget runs out does not depend on
    timing, and a cache replay gives the same answer. The initial model's evaluation is not guarded: a
    `BudgetExhausted` from it propagates to the caller.
    """
    if rule not in ("method", "v2"):
        raise ValueError(f"unknown discovery rule {rule!r}; use 'method' or 'v2'")
    history: list[dict[str, Any]] = []

    async def score(spec: ModelSpec, phase: str) -> tuple[list[float], float]:
        post = await evaluate(spec)
        u = utility(post, spec, alpha)
        history.append({"phase": phase, "model": spec.describe(), "variables": sorted(spec.variables),
                        "start": spec.start, "posterior": post, "utility": u})
        return post, u

    spec = initial
    post, u = await score(spec, "initial")

    def confident() -> bool:
        return (-entropy(post) if rule == "method" else u) >= threshold

    def done(why: str) -> DiscoveryResult:
        return DiscoveryResult(spec, post, u, history, why)

    async def extend_time() -> str | None:
        """One timestep back; the reason to stop if the budget cannot pay for it."""
        nonlocal spec, post, u
        if not budget_ok():
            return "budget"
        nxt = replace(spec, start=spec.start - 1)
        try:
            npost, nu = await score(nxt, "extend-time")
        except BudgetExhausted:
            return "budget"
        spec, post, u = nxt, npost, nu
        return None

    async def adjust_variables() -> str | None:
        """Greedy additions at the current timesteps while U rises and the answer is not confident; the reason
        to stop the whole search ("threshold", "budget"), or None when no candidate raises U any more."""
        nonlocal spec, post, u
        pool = [v for v in candidates if v not in spec.variables]
        while pool and not confident():
            if not budget_ok():
                return "budget"
            trials = []
            ran_out = False
            for var in pool:
                cand = replace(spec, variables=repair(spec.variables | {var}))
                try:
                    cpost, cu = await score(cand, f"try-add {var}")
                except BudgetExhausted:
                    ran_out = True
                    break
                trials.append((cu, var, cand, cpost))
            if not trials:
                return "budget"
            best_u, best_var, best_spec, best_post = max(trials, key=lambda t: t[0])
            if best_u <= u:
                # no tried candidate beats the current model; with untried ones left, the budget decided
                return "budget" if ran_out else None
            spec, post, u = best_spec, best_post, best_u
            history.append({"phase": "added", "variable": best_var, "utility": u})
            pool = [v for v in pool if v not in spec.variables]
            if ran_out and not confident():
                return "budget"
        return "threshold" if confident() else None

    def out_of_options() -> DiscoveryResult:
        left = [v for v in candidates if v not in spec.variables]
        return done("gain-below-alpha" if left else "exhausted")

    if rule == "v2":
        while not confident() and spec.start > 0:
            if (why := await extend_time()) is not None:
                return done(why)
        if confident():
            return done("threshold")
        return done(why) if (why := await adjust_variables()) is not None else out_of_options()
    while True:
        if confident():
            return done("threshold")
        if (why := await adjust_variables()) is not None:
            return done(why)
        if spec.start == 0:
            return out_of_options()
        if (why := await extend_time()) is not None:
            return done(why)
