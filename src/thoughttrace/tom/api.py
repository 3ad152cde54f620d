"""Stable public API for other parts of the package (e.g. model-based inference of users' thoughts).

`posterior_over_hypotheses` answers: given a context, which of these hypotheses about an agent's hidden
variable best explains the evidence? Two ways to ask the model (`mode`):

- `row` (default): ONE distribution over the hypotheses, P(h | evidence, context), asked as a lettered row
  (`likelihood.ChoiceRequest`) in the given and the reversed order and combined by the normalised geometric mean
  (`likelihood.row_both_orders`, which cancels a taste for a letter): 2 requests for any number of hypotheses.
  The hypotheses compete for one answer's probability mass (a distribution that sums to one, whatever n is),
  where independent statements each get their own; a `prior` multiplies the row.
- `statements`: each hypothesis ALONE, P(evidence | h, context) as a calibrated Likely/Unlikely statement, then
  Bayes' rule: n requests. Independent statement scores of similar size give near-uniform posteriors (on the
  ThoughtTrace dev conversations the best of 5 candidates got 0.23-0.37).

`row` needs a backend with a letter distribution (`next_token_logprobs` or `score`); a generate-only backend, or
a likelihood that gives no rows, is asked per statement, and the result says so (`mode`, `note`).
Keep this signature stable; add keyword arguments only.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from thoughttrace.llm import Model

from .inference import normalise_log, ties
from .likelihood import (
    ChoiceRequest,
    Likelihood,
    LikelihoodRequest,
    LLMLikelihood,
    gather_probs,
    row_both_orders,
    rows_of,
)
from .usage import TrackedModel

PosteriorMode = Literal["row", "statements"]
POSTERIOR_MODES: tuple[str, ...] = ("row", "statements")


class HypothesisPosterior(BaseModel):
    """The posterior over hypotheses; `ties` lists every index sharing the best probability.

    `mode` is how the model was asked (`row` or `statements`); `note` says why it differs from the mode
    requested. In `row` mode `log_likelihoods` are the logs of the debiased row (the model's P(h | evidence)).
    """

    format_version: int = 1
    posterior: list[float]
    log_likelihoods: list[float]
    best: int
    ties: list[int]
    hypotheses: list[str] = Field(default_factory=list)
    calls: int = 0
    tokens: int = 0
    mode: str = "statements"
    note: str | None = None


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
    mode: PosteriorMode = "row",
) -> HypothesisPosterior:
    """P(h | evidence, context) for each hypothesis h about `agent`'s `variable`.

    `mode="row"`: one row over all hypotheses, asked in both orders (2 requests); `mode="statements"`: one
    Likely/Unlikely request per hypothesis, issued concurrently. The context goes first in every prompt so a
    local backend reuses its KV cache. `likelihood` overrides the LLM (tests pass a scripted one).
    """
    if mode not in POSTERIOR_MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(POSTERIOR_MODES)}")
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
    rows = rows_of(likelihood) if mode == "row" else None
    note: str | None = None
    if rows is not None:
        if len(hypotheses) == 1:
            log_lik, note = [0.0], "one hypothesis: nothing to weigh, no request made"
        else:
            request = ChoiceRequest(agent=agent, variable=variable, options=tuple(hypotheses),
                                    facts=((f"what {agent} did (evidence)", evidence),), context=context)
            row = await row_both_orders(rows, request)
            log_lik = [math.log(max(p, 1e-300)) for p in row]
        used = "row"
    else:
        if mode == "row":
            note = ("row mode needs a letter distribution (next_token_logprobs or score) and this likelihood gives "
                    "none; asked per statement")
        requests = [
            LikelihoodRequest(agent=agent, variable="what happens next (evidence)", value=evidence,
                              facts=((f"{agent}'s {variable}", h),), context=context)
            for h in hypotheses
        ]
        probs = await gather_probs(likelihood, requests)
        log_lik = [math.log(max(p, 1e-300)) for p in probs]
        used = "statements"
    total = sum(prior) if prior is not None else 0.0
    log_prior = [math.log(p / total) if p > 0 else float("-inf") for p in prior] if prior is not None else [0.0] * len(hypotheses)
    post = normalise_log([a + b for a, b in zip(log_lik, log_prior)])
    tied = ties(post)
    return HypothesisPosterior(
        posterior=post, log_likelihoods=log_lik, best=tied[0], ties=tied, hypotheses=list(hypotheses),
        calls=tracked.usage.calls if tracked else 0, tokens=tracked.usage.tokens if tracked else 0,
        mode=used, note=note,
    )
