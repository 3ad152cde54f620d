"""Factors the method fixes deterministically, so they are never asked of the model.

- Belief persistence: with nothing observed at a step (the step's Observation is "nothing new" or "no
  observation", or the model has no Observation), the belief is unchanged:
  P(B_t = b | B_{t-1} = b', O_t = nothing) = 1 if b == b' else 0. Without this rule every pair of
  hypotheses would cost one LLM call per step (n^2; 225 for a 15-choice step).
Observed-only factors (e.g. P(O | S) with both observed) are constants that the inference skips itself.
"""

from __future__ import annotations

from .model_space import BELIEF, OBS, PREV_BELIEF
from .timeline import NO_OBSERVATION, NOTHING_NEW

#: observation texts that mean "nothing was perceived at this step"
NOTHING_OBSERVED = frozenset({NOTHING_NEW, NO_OBSERVATION})


def fixed_factor(variable: str, value: str, parents: tuple[tuple[str, str], ...]) -> float | None:
    """The factor's value when the method fixes it, else None (ask the likelihood)."""
    if variable == BELIEF:
        given = dict(parents)
        if PREV_BELIEF in given and given.get(OBS, NOTHING_NEW) in NOTHING_OBSERVED:
            return 1.0 if value == given[PREV_BELIEF] else 0.0
    return None
