"""Stable public API for other parts of the package (e.g. model-based inference of users' thoughts).

`posterior_over_hypotheses` answers: given a context, which of these hypotheses about an agent's hidden
variable best explains the evidence? P(h | evidence, context) ∝ P(evidence | h, context) P(h), with the
calibrated LLM likelihood of likelihood.py. Keep this signature stable; add keyword arguments only.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from thoughttrace.llm import Model

from .inference import normalise_log, ties
from .likelihood import Likelihood, LikelihoodRequest, LLMLikelihood, gather_probs
from .usage import TrackedModel


class HypothesisPosterior(BaseModel):
    """The posterior over hypotheses; `ties` lists every index sharing the best probability."""

    format_version: int = 1
    posterior: list[float]
    log_likelihoods: list[float]
    best: int
    ties: list[int]
    hypotheses: list[str] = Field(default_factory=list)
    calls: int = 0
    tokens: int = 0


async def posterior_over_hypotheses(
    model: Model | TrackedModel | None,
    context: str,
    hypotheses: list[str],
    evidence: str,
    *,
    agent: str = "the user",
    variable: str = "thought",
    prior: list[float] | None = None,
    likelihood: Likelihood | None = None,
) -> HypothesisPosterior:
    """P(h | evidence, context) for each hypothesis h about `agent`'s `variable`.

    One likelihood request per hypothesis, issued concurrently; the context goes first in every prompt so
    a local backend reuses its KV cache. `likelihood` overrides the LLM (tests pass a scripted one).
    """
    if not hypotheses:
        raise ValueError("posterior_over_hypotheses needs at least one hypothesis")
    if prior is not None:
        if len(prior) != len(hypotheses):
            raise ValueError(f"prior has {len(prior)} entries for {len(hypotheses)} hypotheses")
        if any(p < 0 for p in prior) or sum(prior) <= 0:
            raise ValueError("prior must be non-negative with a positive sum")
    tracked: TrackedModel | None = None
    if likelihood is None:
        if model is None:
            raise ValueError("pass a model or a likelihood")
        llm = LLMLikelihood(model)
        tracked = llm.model
        likelihood = llm
    requests = [
        LikelihoodRequest(agent=agent, variable="what happens next (evidence)", value=evidence,
                          facts=((f"{agent}'s {variable}", h),), context=context)
        for h in hypotheses
    ]
    probs = await gather_probs(likelihood, requests)
    log_lik = [math.log(max(p, 1e-300)) for p in probs]
    total = sum(prior) if prior is not None else 0.0
    log_prior = [math.log(p / total) if p > 0 else float("-inf") for p in prior] if prior is not None else [0.0] * len(hypotheses)
    post = normalise_log([a + b for a, b in zip(log_lik, log_prior)])
    tied = ties(post)
    return HypothesisPosterior(
        posterior=post, log_likelihoods=log_lik, best=tied[0], ties=tied, hypotheses=list(hypotheses),
        calls=tracked.usage.calls if tracked else 0, tokens=tracked.usage.tokens if tracked else 0,
    )
