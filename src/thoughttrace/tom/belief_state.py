"""The belief-of-state sub-inference for higher-order questions ("Where does Anne think Sally thinks ...").

For an outer agent A reasoning about an inner agent B (the question's last two agents; agents further out
have already re-told the story from their perspective, `timeline.visible_story`, which is the recursion),
the inner model is A's model of B, and the world in it is the world as A believes it:

1. at each of B's timesteps t, A's belief of the world state is inferred: a posterior P_A,t(s) over state
   hypotheses s, from what A perceived up to t (a one-step AutoToM inference for A: O observed, Belief
   latent over the hypotheses, the shared calibrated likelihood, memoised per step, counted in the one budget);
2. B's Observation at a step where something happened is latent, {what happened, no observation}, scored as
   "what A believes B perceived" given "what A believes is true in the world: s" (O <- S in the method's
   parent graph), with A's perceived story so far as the shared context;
3. B's Belief follows from that Observation as in a first-order model (the persistence rule included).

The inner inference marginalises s at every such step (State is a latent root whose prior is P_A,t), so the
answer is A's posterior over B's belief; both levels' posteriors are in the trace (`trace["belief_of_state"]`:
P_A,t per step, and the inner belief and state marginals of the chosen model). Mental variables still never
take State as a parent: s reaches B's belief only through B's Observation.

State hypotheses are the contents of B's belief hypotheses with the mental-verb prefixes removed ("Sally
thinks that the ball is in the basket." -> "The ball is in the basket."), deduplicated; with fewer than two
distinct ones the state is not inferred (noted in the trace) and only the Observation stays latent.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from .inference import InferenceConfig, InferenceResult, infer
from .model_space import BELIEF, OBS, Node, ProblemModel, StepModel

_VERBS = (r"thinks?|believes?|knows?|assumes?|expects?|suspects?|supposes?|is sure|is convinced|"
          r"would think|would believe|will think|will believe")


def state_of(belief: str, agents: list[str]) -> str:
    """The world-state content of a belief statement: every leading "<agent> thinks (that)" removed; for the
    parse's fallback form "<question>: <choice>" the agents' mental verbs are removed from the question
    ("Where does Anne think that Sally thinks the ball is: basket" -> "Where the ball is: basket")."""
    names = "|".join(re.escape(a) for a in agents if a.strip()) or r"(?!x)x"
    prefix = re.compile(rf"^\s*(?:{names})\s+(?:{_VERBS})(?:\s+that)?\s*(?:this is so\s*:\s*)?[,:]?\s*", re.I)
    head, sep, choice = belief.rpartition(": ")
    if sep and "?" not in head and re.match(r"^\s*(?:where|what|which|who|how|when|why|does|do|did|is|will)\b", head, re.I):
        inner = re.compile(rf"\b(?:(?:do|does|did|will|would)\s+)?(?:{names})\s+(?:{_VERBS})(?:\s+that)?\s+", re.I)
        stripped = inner.sub("", head).strip()
        if stripped != head.strip():
            return f"{stripped[:1].upper()}{stripped[1:]}: {choice.strip()}"
    text = belief.strip()
    changed = False
    while True:
        m = prefix.match(text)
        if m is None or m.end() >= len(text):
            break
        text, changed = text[m.end():], True
    return text[:1].upper() + text[1:] if changed else text


def state_hypotheses(beliefs: list[str], agents: list[str]) -> list[str]:
    """Distinct world states the inner agent's belief hypotheses are about, in their order."""
    out: list[str] = []
    for b in beliefs:
        s = state_of(b, agents)
        if s and s.lower().rstrip(".") not in {x.lower().rstrip(".") for x in out}:
            out.append(s)
    return out


#: factor for the outer agent's own one-step inference: (variable, value, parents) -> probability
OuterFactor = Callable[[str, str, tuple[tuple[str, str], ...]], Awaitable[float]]


async def outer_state_posterior(factor: OuterFactor, outer: str, perceived: str, states: list[str],
                                config: InferenceConfig | None = None) -> InferenceResult:
    """P_A(s | what A perceived): A's Belief over the state hypotheses, its Observation the perceived text."""
    pm = ProblemModel(outer, [StepModel(0, {OBS: Node(OBS, [perceived], observed=True),
                                            BELIEF: Node(BELIEF, list(states))})], BELIEF)

    async def fn(step: int, var: str, value: str, parents: tuple[tuple[str, str], ...]) -> float:
        return await factor(var, value, parents)

    return await infer(pm, fn, config)
