"""Factors the method fixes deterministically, so they are never asked of the model.

- Belief persistence: with nothing observed at a step (the step's Observation is "nothing new" or "no
  observation", or the model has no Observation), the belief is unchanged:
  P(B_t = b | B_{t-1} = b', O_t = nothing) = 1 if b == b' else 0. Without this rule every pair of
  hypotheses would cost one LLM call per step (n^2; 225 for a 15-choice step).
- The same for an observation UNRELATED to the belief hypotheses (`persistence="unrelated"`, the default):
  when every hypothesis names something of its own (a container, an object, an intention) and the
  observation mentions none of the words that tell the hypotheses apart, it cannot move the belief from
  one hypothesis to another ("Mary walked to the kitchen" says nothing about potato vs. wine in the
  cabinet). Hypotheses that differ by a negation ("there is" / "there isn't") or by nothing of their own
  never use it: every transition is asked.
- No evidence at a window's first step (`persistence="unrelated"` too): with no previous belief and "nothing
  new" observed, or an observed (not latent) observation unrelated to the hypotheses as above, P(B | O) is
  the same for every hypothesis (1.0); asking the model would only add its prior taste for one wording
  (0.037 vs. 0.048 on a ToMi item; 0.024 vs. 0.027 given "Jacob loves the beans."), and the window's later
  steps decide. A latent observation is always asked there: its branches are weighed against each other, and
  a fixed 1.0 beside the model's asked values would outweigh them.
- An observed act UNRELATED to the belief (`persistence="unrelated"` too): an action or utterance the story
  states, whose only parent in the model is the Belief, and that mentions nothing the belief hypotheses are
  about (neither the words they share, such as the object, nor those that tell them apart; the names of the
  question's agents and words of thinking do not count), has the same likelihood under every hypothesis (1.0). "Jacob exited the
  porch" says nothing about which of seven containers he thinks the green_pepper is in; asked, each such act cost
  one request per hypothesis (7) for the model's taste for a wording. An act that mentions the object or a
  container is asked ("Noor grabs a milk pitcher" against "oat milk" / "almond milk"), and so is every act
  beside a Goal (it may be explained by the goal) and every hypothetical (latent) act.
Both UNRELATED rules read an observation or act without its clauses that place an object the hypotheses never name:
"The apple is in the blue_pantry." and "Jacob publicly claimed that apple is in the red_container now." say nothing
about where the green_pepper is, though each names one of its containers (`wording.without_other_placements`).
`persistence="nothing-observed"` keeps only the first rule (before; for replays).
Observed-only factors (e.g. P(O | S) with both observed) are constants that the inference skips itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from .model_space import ACTION, BELIEF, OBS, PREV_BELIEF, UTTER
from .rules import DEFAULT_RULES
from .timeline import NO_OBSERVATION, NOTHING_NEW
from .wording import NOT, THINKING_WORDS, terms, without_other_placements

#: observation texts that mean "nothing was perceived at this step"
NOTHING_OBSERVED = frozenset({NOTHING_NEW, NO_OBSERVATION})

PersistenceRule = Literal["unrelated", "nothing-observed"]

#: why a belief factor was fixed, as recorded in trace["fixed_by_rule"]
NOTHING = "nothing observed"
UNRELATED = "observation unrelated to the hypotheses"
NO_EVIDENCE = "nothing observed at the first step"
NO_EVIDENCE_UNRELATED = "observation unrelated to the hypotheses at the first step"
ACT_UNRELATED = "observed act unrelated to the belief"


@lru_cache(maxsize=256)
def telling_apart(hypotheses: tuple[str, ...]) -> frozenset[str] | None:
    """The words that tell the hypotheses apart (in some of them, not in all), or None when the rule
    cannot be used: fewer than two hypotheses, one that names nothing of its own, or a negation that only
    some of them carry."""
    if len(hypotheses) < 2:
        return None
    sets = [terms(h) for h in hypotheses]
    common = frozenset.intersection(*sets)
    apart = frozenset.union(*sets) - common
    if NOT in apart:
        return None
    for i, s in enumerate(sets):
        others = frozenset().union(*(t for j, t in enumerate(sets) if j != i))
        if not s - others:
            return None
    return apart


def evidence_terms(text: str, hypotheses: Sequence[str], rules: frozenset[str] = DEFAULT_RULES) -> frozenset[str]:
    """The content words of an observation or act that can bear on the hypotheses: a clause placing an object the
    hypotheses never name ("The apple is in the blue_pantry." against beliefs about the green_pepper) is left out
    (rule `other_placements`)."""
    if "other_placements" not in rules:
        return terms(text)
    named = frozenset().union(*(terms(h) for h in hypotheses))
    return terms(without_other_placements(text, named))


def unrelated(observation: str, hypotheses: Sequence[str], rules: frozenset[str] = DEFAULT_RULES) -> bool:
    """The observation mentions none of the words that tell the hypotheses apart (and the rule applies)."""
    apart = telling_apart(tuple(hypotheses))
    return apart is not None and not (evidence_terms(observation, hypotheses, rules) & apart)


def act_unrelated(act: str, hypotheses: Sequence[str], names: str, rules: frozenset[str] = DEFAULT_RULES) -> bool:
    """The act mentions nothing the belief hypotheses are about (the words they share or that tell them apart,
    other than the `names` of the question's agents and words of thinking), and the hypotheses each name something
    of their own."""
    hyps = tuple(hypotheses)
    apart = telling_apart(hyps)
    if apart is None:
        return False
    about = (apart | frozenset.intersection(*(terms(h) for h in hyps))) - terms(names) - THINKING_WORDS
    return not (evidence_terms(act, hyps, rules) & about)


def fixed_reason(variable: str, parents: tuple[tuple[str, str], ...], hypotheses: Sequence[str] = (),
                 rule: PersistenceRule = "unrelated", observation_latent: bool = False, *,
                 value: str = "", act_observed: bool = False, names: str = "",
                 rules: frozenset[str] = DEFAULT_RULES) -> str | None:
    """Why this factor is fixed (NOTHING, UNRELATED, NO_EVIDENCE, NO_EVIDENCE_UNRELATED or ACT_UNRELATED), or None
    when it must be asked. `hypotheses` are the belief's values (the UNRELATED rules read them);
    `observation_latent`: the step's Observation is inferred (then its first-step factors are all asked);
    `act_observed`: an Action / Utterance factor's `value` is what the story says the agent did (not a hypothesis);
    `names`: the question's agents (their names are not what a belief is about); `rules`: the text rules on
    (rules.py: `unrelated_observation`, `first_step_no_evidence`, `act_unrelated`, `other_placements`)."""
    if variable in (ACTION, UTTER):
        only_belief = {p for p, _ in parents} == {BELIEF}
        if rule == "unrelated" and "act_unrelated" in rules and act_observed and only_belief \
                and act_unrelated(value, hypotheses, names, rules):
            return ACT_UNRELATED
        return None
    if variable != BELIEF:
        return None
    given = dict(parents)
    if PREV_BELIEF not in given:
        # the first step of a window: with nothing observed, or nothing that tells the hypotheses apart, there is
        # no evidence, every value alike
        if rule != "unrelated" or OBS not in given or "first_step_no_evidence" not in rules:
            return None
        if given[OBS] == NOTHING_NEW:
            return NO_EVIDENCE
        if not observation_latent and given[OBS] not in NOTHING_OBSERVED and "unrelated_observation" in rules \
                and unrelated(given[OBS], hypotheses, rules):
            return NO_EVIDENCE_UNRELATED
        return None
    observation = given.get(OBS, NOTHING_NEW)
    if observation in NOTHING_OBSERVED:
        return NOTHING
    if rule == "unrelated" and "unrelated_observation" in rules and unrelated(observation, hypotheses, rules):
        return UNRELATED
    return None


#: how a belief transition P(B_t | B_t-1, O_t) that must be asked is scored (AutoToMConfig.belief_transition):
#: "asked": one request per (belief, previous belief) pair, n^2 per step (the reference method's factor);
#: "sticky": the agent filters a sticky world (sticky_transition): n requests per step, each the belief given what
#: it observed alone -- the same request as a window's first step -- times the chance the belief stays
TransitionRule = Literal["asked", "sticky"]
#: the sticky world's stay weight: the belief held before is kept with this weight, the rest is spread over
#: every hypothesis (so a belief the observation does not favour can still change, and one it does can stay)
DEFAULT_STAY = 0.5


def sticky_transition(evidence: float, value: str, previous: str, n: int, stay: float = DEFAULT_STAY) -> float:
    """P(B_t = value | B_t-1 = previous, O_t) up to a constant, as an agent filtering a sticky world would have it:
    `evidence` (the belief given the observation alone, the model's answer) times K(value | previous) =
    stay * [value == previous] + (1 - stay) / n. Why: asking every (belief, previous belief) pair costs n^2
    requests per step for a 3-way MuMA-ToM belief (9) or a Hi-ToM one with 7 places (49); the observation's own
    evidence is n requests (the same ones a window's first step asks), and the previous belief enters through K,
    the same for every story. On dev it took MuMA-ToM from 39.8 to 26.6 requests per question (docs/tom.md)."""
    return evidence * (stay * (value == previous) + (1.0 - stay) / n)


def fixed_factor(variable: str, value: str, parents: tuple[tuple[str, str], ...], hypotheses: Sequence[str] = (),
                 rule: PersistenceRule = "unrelated", observation_latent: bool = False, *,
                 act_observed: bool = False, names: str = "",
                 rules: frozenset[str] = DEFAULT_RULES) -> tuple[float, str] | None:
    """(the factor's value, why it is fixed) when the method fixes it, else None (ask the likelihood)."""
    reason = fixed_reason(variable, parents, hypotheses, rule, observation_latent, value=value,
                          act_observed=act_observed, names=names, rules=rules)
    if reason is None:
        return None
    if reason in (NO_EVIDENCE, NO_EVIDENCE_UNRELATED, ACT_UNRELATED):
        return 1.0, reason
    return (1.0 if value == dict(parents)[PREV_BELIEF] else 0.0), reason
