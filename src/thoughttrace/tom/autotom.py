"""AutoToM: automated Bayesian inverse planning with automated model discovery.

Pipeline per question (each structured step validated, retried once, with a documented fallback):
1. parse the question (analysis.py): agents (outermost first), the query variable, given facts,
   choices as statements, "least likely", an initial model;
2. re-tell the story from each outer agent's perspective, then cut the innermost agent's timeline at its
   actions (timeline.py);
3. propose hypotheses for latent variables that are not the query (K per choice; fallback: the choices'
   statements) only when a model needs them;
4. ground a model spec (variables x timesteps) into a ProblemModel and infer the posterior over the
   choices with calibrated LLM likelihoods (likelihood.py, inference.py); for a question with two or more
   agents, the world in the inner agent's model is the outer agent's inferred belief of it (belief_state.py);
5. discover the model (discovery.py): from the initial model at the last step, extend back in time, then
   add variables, by the utility -H(P(query)) - alpha |M|, within a budget of likelihood requests.

Calls are cached by the model layer and memoised per question, so the discovery's re-evaluations only
pay for factors they have not seen.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, Field

from thoughttrace.llm import Model

from .analysis import QuestionAnalysis, analyse_question
from .belief_state import outer_state_posterior, state_hypotheses
from .discovery import DEFAULT_ALPHA, DEFAULT_THRESHOLD, BudgetExhausted, ModelSpec, SearchRule, discover
from .extract import extract_steps
from .factors import (
    DEFAULT_STAY,
    PersistenceRule,
    TransitionRule,
    act_unrelated,
    fixed_factor,
    fixed_reason,
    sticky_transition,
    unrelated,
)
from .inference import CarryRule, InferenceConfig, InferenceResult, PruneRule, gather_settled, infer
from .likelihood import ChoiceRequest, Likelihood, LikelihoodRequest, LLMLikelihood, row_both_orders, rows_of
from .model_space import (
    ACTION,
    ALL_VARIABLES,
    BELIEF,
    GOAL,
    OBS,
    PREV_BELIEF,
    STATE,
    UTTER,
    Node,
    ProblemModel,
    StepModel,
    valid_model,
)
from .prompts import render
from .result import Answer
from .rules import DEFAULT_RULES
from .rules import check as check_rules
from .structured import structured_step
from .timeline import (
    NO_OBSERVATION,
    NOTHING_NEW,
    Step,
    after_last_act,
    build_timeline,
    perceive,
    split_sentences,
    visible_story,
)
from .usage import TrackedModel, track
from .wording import claim, group_members, group_text, restates


@cache
def labels() -> dict[str, str]:
    text = resources.files("thoughttrace.tom").joinpath("prompts", "labels.yaml").read_text(encoding="utf-8")
    data: dict[str, str] = yaml.safe_load(text)
    return data


@dataclass
class AutoToMConfig:
    """Parameters with the published defaults where there are any (threshold, alpha, K)."""

    k_hypotheses: int = 1
    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    prune_threshold: float = 0.05
    propagate_threshold: float = 0.95
    #: THE budget: most distinct likelihood requests sent to the model per question, the initial model
    #: included; factors the method fixes (belief persistence) and structured steps (parse, perception,
    #: hypotheses: each at most two calls) do not count. When a model would exceed it, that model counts
    #: as not tried and the discovery keeps the best model so far ("stopped_because": "budget").
    likelihood_budget: int = 40
    #: most timesteps modelled; longer timelines are condensed (the earliest steps merged into one whose
    #: observation keeps all their text; recorded in trace["condensed"]); None keeps every step
    max_steps: int | None = None
    llm_steps: bool = True
    #: per-step extraction of Action / Utterance / stated Goal / stated Belief (extract.py): one structured
    #: call per `extract_chunk` steps, chunks concurrently; off by default (it costs those calls)
    extract_steps: bool = False
    extract_chunk: int = 4
    #: higher-order questions: infer what the outer agent believes the inner agent observed (each observed
    #: step's Observation becomes latent, {what was seen, no observation}, scored as "what <outer> believes
    #: <inner> perceived" given "what <outer> believes is true"); off by default (it costs those requests)
    nested_observation: bool = False
    #: higher-order questions (two or more agents) only: the belief-of-state sub-inference (belief_state.py):
    #: the outer agent's posterior over the world state at each of the inner agent's steps, inferred from what
    #: it perceived, is the prior of a latent State that the inner agent's (latent) Observation depends on.
    #: On by default: a first-order question never reaches it (its traces and requests are byte-identical,
    #: tests/tom/test_first_order_unchanged.py); its requests count in the one budget
    belief_of_state: bool = True
    #: how the prune threshold is applied (inference.prune_keep): "ratio" (default) or "absolute" (before
    #: the fix of the exact-1.0 posteriors; kept for replaying old runs)
    prune_rule: PruneRule = "ratio"
    #: when a carried belief is held as certain (inference.InferenceConfig.carry_rule): "lazy" (default) or
    #: "eager" (before; a 0.96 carried into steps where nothing was observed became an exact 1.0)
    carry_rule: CarryRule = "lazy"
    #: the discovery's search (discovery.py): "method" (default: variables at the last step, then earlier
    #: steps, stop when -H reaches the threshold; a tried variable that adds no factor is not grounded,
    #: `_Grounding.effective`) or "v2" (before, for replays: back to the first step, then variables, each
    #: grounded; stop on U)
    discovery_rule: SearchRule = "method"
    #: which belief factors are fixed without asking (factors.py): "unrelated" (default: a transition with
    #: nothing observed or with an observation that mentions none of the words telling the hypotheses apart,
    #: and a window's first step with nothing observed) or "nothing-observed" (the literal rule; before)
    persistence: PersistenceRule = "unrelated"
    #: how a belief transition that is asked is scored (factors.sticky_transition): "sticky" (default, engine
    #: v17: the belief given the observation alone, n requests per step, times the chance the belief stays,
    #: `belief_stay`) or "asked" (every pair of belief and previous belief, n^2 per step; v16 and before)
    belief_transition: TransitionRule = "sticky"
    belief_stay: float = DEFAULT_STAY
    #: latent variables whose factor is asked a row at a time (likelihood.ChoiceRequest, in both option orders:
    #: 2n requests for a belief transition instead of n^2; each row sums to one); needs a likelihood with
    #: `supports_choice` (logprobs or score), else every value is asked alone. Empty (default): every factor
    #: per statement; rows measured weaker with the 1.5B model, whose letter answers are mostly position taste
    #: (docs/tom.md "Rows, not statements"); e.g. frozenset({BELIEF, ACTION}) for a stronger model
    row_variables: frozenset[str] = frozenset()
    constrained: bool = True
    likelihood_method: str = "auto"
    #: the deterministic text rules on (rules.py: one module lists them all, each with a switch); e.g.
    #: `rules.without("co_location")` for an ablation, `rules.with_rules("choice_filter")` to replay older runs
    rules: frozenset[str] = DEFAULT_RULES

    def __post_init__(self) -> None:
        self.rules = check_rules(self.rules)


class _Hypotheses(BaseModel):
    hypotheses: list[str] = Field(min_length=1)


class _Counting:
    """Counts distinct likelihood requests around any Likelihood (shared by every model the discovery
    tries, so a factor two models share is asked once); a new request past `limit` raises
    BudgetExhausted before it is sent, so `len(seen)` never exceeds the budget."""

    def __init__(self, inner: Likelihood, limit: int) -> None:
        self.inner = inner
        self.seen: set[LikelihoodRequest | ChoiceRequest] = set()
        self.limit = limit
        self.rows = rows_of(inner)
        self.supports_choice = self.rows is not None

    def _count(self, request: LikelihoodRequest | ChoiceRequest) -> None:
        if request not in self.seen:
            if len(self.seen) >= self.limit:
                raise BudgetExhausted(f"likelihood budget of {self.limit} requests spent")
            self.seen.add(request)

    async def __call__(self, request: LikelihoodRequest) -> float:
        self._count(request)
        return await self.inner(request)

    async def choose(self, request: ChoiceRequest) -> list[float]:
        if self.rows is None:
            raise TypeError("this likelihood gives no rows; check supports_choice before choose")
        self._count(request)
        return await self.rows.choose(request)


class AutoToM:
    name = "autotom"

    def __init__(self, config: AutoToMConfig | None = None, likelihood: Likelihood | None = None) -> None:
        self.config = config or AutoToMConfig()
        self._likelihood = likelihood

    async def solve(self, model: Model | TrackedModel | None, story: str, question: str, choices: list[str]) -> Answer:
        tm = track(model) if model is not None else None
        if self._likelihood is None and tm is None:
            raise ValueError("AutoToM needs a model or a likelihood")
        trace: dict[str, Any] = {}
        rules = self.config.rules
        # off by default (rules.py "choice_filter"): a choice whose words the story lacks ("Not Given") may be the answer
        kept = choices_in_story(story, choices) if "choice_filter" in rules else list(range(len(choices)))
        trace["choices_kept"] = kept
        trace["choices_filtered"] = [choices[i] for i in range(len(choices)) if i not in kept]
        groups = absent_choice_groups(story, choices, kept) if "absent_choices_grouped" in rules else [[i] for i in kept]
        if any(len(g) > 1 for g in groups):
            trace["choices_grouped"] = [[choices[i] for i in g] for g in groups if len(g) > 1]
        sub = [choices[g[0]] if len(g) == 1 else group_text([choices[i] for i in g]) for g in groups]
        post, inner_trace = await self._solve(tm, story, question, sub)
        trace.update(inner_trace)
        full = [0.0] * len(choices)
        for g, p in zip(groups, post):
            for i in g:
                full[i] = p / len(g)
        usage = tm.finish() if tm is not None else None
        # a removed choice is never the answer, not even the argmin of a "least likely" question
        return Answer.from_posterior(self.name, choices, full, least=trace["least_likely"], trace=trace, usage=usage,
                                     candidates=kept)

    async def _solve(self, tm: TrackedModel | None, story: str, question: str,
                     choices: list[str]) -> tuple[list[float], dict[str, Any]]:
        cfg = self.config
        inner: Likelihood = self._likelihood or LLMLikelihood(tm, method=cfg.likelihood_method)  # type: ignore[arg-type]
        lik = _Counting(inner, cfg.likelihood_budget)
        trace: dict[str, Any] = {}
        analysis, trace["question"] = await analyse_question(tm, story, question, choices, use_llm=cfg.llm_steps,
                                                             constrained=cfg.constrained, rules=cfg.rules)
        trace["least_likely"] = analysis.least_likely
        sentences = split_sentences(story) or [story]
        visible = sentences
        trace["perspectives"] = []
        for outer in analysis.agents[:-1]:
            per = await perceive(tm, visible, outer, use_llm=cfg.llm_steps, constrained=cfg.constrained, rules=cfg.rules)
            visible = visible_story(visible, per) or visible
            trace["perspectives"].append({"agent": outer, "visible": visible, "trace": per.trace})
        if analysis.agent is not None:
            per = await perceive(tm, visible, analysis.agent, use_llm=cfg.llm_steps, constrained=cfg.constrained,
                                 rules=cfg.rules)
            trace["perception"] = per.trace
            steps = build_timeline(visible, per)
            if "own_acts_observed" in cfg.rules and analysis.slot == BELIEF and steps and \
                    own_act_bears_on(steps[-1], analysis.statements, " ".join(analysis.agents), cfg.rules):
                # the story ends with the agent's act on what the belief is about: the belief asked is the one after it
                steps = after_last_act(steps)
                trace["own_last_act_step"] = steps[-1].index
        else:
            steps = build_timeline(visible, None)
        if cfg.extract_steps and cfg.llm_steps and tm is not None and analysis.agent is not None:
            steps, trace["extraction"] = await extract_steps(tm, steps, analysis.agent, chunk_size=cfg.extract_chunk,
                                                             constrained=cfg.constrained)
        if cfg.nested_observation and not cfg.belief_of_state and len(analysis.agents) > 1:
            # the outer agent's belief of the state is the world as it perceived it (its re-told story)
            trace["belief_of_state"] = {"outer": analysis.agents[-2], "inner": analysis.agents[-1],
                                        "state": " ".join(visible)}
        if cfg.max_steps and len(steps) > cfg.max_steps:
            steps, trace["condensed"] = condense(steps, cfg.max_steps)
        trace["timeline"] = [s.as_dict() for s in steps]
        icfg = InferenceConfig(cfg.prune_threshold, cfg.propagate_threshold, cfg.prune_rule,
                               carry_rule=cfg.carry_rule)
        grounding = _Grounding(analysis, steps, story, question, choices, tm, cfg, lik, icfg)
        if grounding.belief_of_state:
            icfg = replace(icfg, marginals=frozenset({STATE, BELIEF}))
        memo: dict[ModelSpec, InferenceResult] = {}
        fixed: dict[str, int] = {}

        def fixed_here(step: int, var: str, value: str, parents: tuple[tuple[str, str], ...]) -> tuple[float, str] | None:
            return fixed_factor(var, value, parents, grounding.belief_values, cfg.persistence,
                                observation_latent=step in grounding.latent_observation,
                                act_observed=(step, var) in grounding.observed_acts, names=grounding.names,
                                rules=cfg.rules)

        def sticky(var: str, parents: tuple[tuple[str, str], ...]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
            """(the previous belief, the other parents) when this belief transition is scored as a sticky world."""
            given = dict(parents)
            if cfg.belief_transition != "sticky" or var != BELIEF or PREV_BELIEF not in given:
                return None
            return given[PREV_BELIEF], tuple(p for p in parents if p[0] != PREV_BELIEF)

        async def factor(step: int, var: str, value: str, parents: tuple[tuple[str, str], ...]) -> float:
            got = fixed_here(step, var, value, parents)
            if got is not None:
                fixed[got[1]] = fixed.get(got[1], 0) + 1
                return got[0]
            split = sticky(var, parents)
            if split is not None:
                evidence = await factor(step, var, value, split[1])
                return sticky_transition(evidence, value, split[0], len(grounding.belief_values), cfg.belief_stay)
            agent = grounding.agent_name
            facts = tuple((grounding.label(p), v) for p, v in parents)
            if grounding.belief_of_state and var == OBS:
                # what the outer agent perceived so far is the shared context of "did the inner agent see it";
                # "no observation" says nothing the world state could agree with, so it is asked once, not per state
                if value == NO_OBSERVATION:
                    facts = tuple(f for (p, _), f in zip(parents, facts) if p != STATE)
                req = LikelihoodRequest(agent=agent, variable=grounding.label(var), value=value, facts=facts,
                                        context=grounding.outer_context(step))
            else:
                req = LikelihoodRequest(agent=agent, variable=grounding.label(var), value=value, facts=facts)
            return await lik(req)

        async def row(step: int, var: str, values: list[str], parents: tuple[tuple[str, str], ...]) -> list[float] | None:
            if var not in cfg.row_variables or not lik.supports_choice \
                    or fixed_here(step, var, values[0], parents) is not None:
                return None  # asked per value (a fixed factor is counted there, and asks nothing)
            split = sticky(var, parents)
            asked = parents if split is None else split[1]
            facts = tuple((grounding.label(p), v) for p, v in asked)
            got = await row_both_orders(lik, ChoiceRequest(agent=grounding.agent_name, variable=grounding.label(var),
                                                           options=tuple(values), facts=facts))
            if split is None:
                return got
            return [sticky_transition(e, v, split[0], len(grounding.belief_values), cfg.belief_stay)
                    for e, v in zip(got, values)]

        def effective(spec: ModelSpec) -> ModelSpec:
            return grounding.effective(spec) if cfg.discovery_rule == "method" else spec

        async def evaluate(spec: ModelSpec) -> list[float]:
            key = effective(spec)
            if key not in memo:
                pm = await grounding.ground(key)
                memo[key] = await infer(pm, factor, icfg, row)
            return memo[key].posterior

        initial = ModelSpec(grounding.repair(frozenset(analysis.initial_model)), start=len(steps) - 1)
        trace["hypotheses"] = grounding.hypotheses
        trace["hypothesis_steps"] = grounding.traces
        try:
            found = await discover(initial, evaluate, candidates=grounding.candidates(), threshold=cfg.threshold,
                                   alpha=cfg.alpha, budget_ok=lambda: len(lik.seen) < cfg.likelihood_budget,
                                   repair=grounding.repair, rule=cfg.discovery_rule)
        except BudgetExhausted:
            # the initial model alone needs more than the budget: no model was evaluated, nothing is known
            trace["discovery"] = {"model": initial.describe(), "stopped_because": "budget", "utility": None,
                                  "history": [], "note": "the initial model alone exceeds the likelihood budget"}
            trace["likelihood_requests"] = len(lik.seen)
            trace["fixed_factors"], trace["fixed_by_rule"] = sum(fixed.values()), fixed
            return [1.0] * len(choices), trace
        chosen = memo[effective(found.spec)]
        trace["discovery"] = {"model": found.spec.describe(), "stopped_because": found.stopped_because,
                              "utility": found.utility, "history": found.history}
        trace["inference"] = chosen.trace
        trace["constant_posterior"] = chosen.constant_posterior
        if grounding.belief_of_state:
            trace["belief_of_state"] = grounding.belief_state_trace(chosen)
        trace["likelihood_requests"] = len(lik.seen)
        trace["fixed_factors"], trace["fixed_by_rule"] = sum(fixed.values()), fixed
        if isinstance(inner, LLMLikelihood):
            trace["likelihood_calls"] = inner.trace  # every request: variable, value, facts, p, how
        return chosen.posterior, trace


def own_act_bears_on(step: Step, hypotheses: list[str] | tuple[str, ...], names: str,
                     rules: frozenset[str] = DEFAULT_RULES) -> bool:
    """Whether the agent's own act at `step` can bear on its belief: it mentions something the belief hypotheses
    are about (the object, a container; `factors.act_unrelated`, the question's agents' names not counting). Such an
    act is also something the agent perceived: it feeds the belief at the next step (rule `own_acts_observed`;
    hitom-00425: Jacob moved the pepper himself and his belief stayed where it was). An act about nothing the
    beliefs are about ("Jacob exited the porch") is left out, as before: it could not move the belief."""
    act = step.action or step.utterance
    if not act or len(hypotheses) < 2:
        return False
    return not act_unrelated(act, hypotheses, names, rules)


def absent_choice_groups(story: str, choices: list[str], kept: list[int]) -> list[list[int]]:
    """The choices as the inference's hypotheses (rule `absent_choices_grouped`): each choice on its own, except that
    the short choices naming nothing in the story (`named_in_story`), when there are two or more of them and at least
    one choice is named, are one hypothesis together ("one of: red_bottle, blue_envelope, ..."), whose posterior they
    share equally. Nothing is removed: the model can still answer a choice absent from the story ("Not Given" is a
    hypothesis of its own when it is the only absent choice), and a Hi-ToM question with 15 containers, 13 never
    named, costs 3 hypotheses, not 15 (a belief transition is n^2 requests). The group sits where its first member
    is."""
    absent = [i for i in kept if not named_in_story(story, choices[i])]
    if len(absent) < 2 or len(absent) == len(kept):
        return [[i] for i in kept]
    out: list[list[int]] = []
    for i in kept:
        if i not in absent:
            out.append([i])
        elif i == absent[0]:
            out.append(absent)
    return out


def named_in_story(story: str, choice: str) -> bool:
    """A choice the story can speak of: a sentence (4+ words), or a short choice whose words occur in the story
    together ("red box" in "the red_box")."""
    norm = " ".join(re.findall(r"[a-z0-9]+", story.lower().replace("_", " ")))
    words = re.findall(r"[a-z0-9]+", choice.lower().replace("_", " "))
    return len(words) > 3 or not words or re.search(rf"\b{re.escape(' '.join(words))}\b", norm) is not None


def choices_in_story(story: str, choices: list[str]) -> list[int]:
    """Indices of the choices to reason about: a short choice (up to three words, e.g. a container) that
    names nothing in the story cannot be where anything is or what anyone saw, so it is left out (its
    posterior is 0; recorded in trace["choices_filtered"]). Sentences are always kept, and so is every
    choice when fewer than two would remain. Rule `choice_filter`, off by default: it removed answers the model
    could give; the default groups such choices instead (`absent_choice_groups`)."""
    kept = [i for i, c in enumerate(choices) if named_in_story(story, c)]
    return kept if len(kept) >= 2 else list(range(len(choices))) if len(kept) >= 2 else list(range(len(choices)))


def condense(steps: list[Step], max_steps: int) -> tuple[list[Step], dict[str, Any]]:
    """Keep the last `max_steps - 1` steps and merge all earlier ones into one first step, so nothing is
    dropped: its observation holds every observed sentence and own action of the merged steps."""
    head, tail = steps[: len(steps) - max_steps + 1], steps[len(steps) - max_steps + 1:]
    observed = [t for s in head for t in (s.observation, s.action, s.utterance)
                if t is not None and t not in (NO_OBSERVATION, NOTHING_NEW)]
    unknown = any(s.observation is None for s in head)
    merged = Step(0, [x for s in head for x in s.sentences], head[-1].state,
                  None if unknown else (" ".join(observed) or NOTHING_NEW),
                  " ".join(s.events for s in head if s.events != NOTHING_NEW) or NOTHING_NEW)
    out = [merged] + [Step(i + 1, s.sentences, s.state, s.observation, s.events, s.action, s.utterance)
                      for i, s in enumerate(tail)]
    return out, {"merged_steps": len(head), "kept_steps": len(tail), "max_steps": max_steps}


class _Grounding:
    """Turns a model spec into a ProblemModel for this question; proposes hypotheses on first need."""

    def __init__(self, analysis: QuestionAnalysis, steps: list[Step], story: str, question: str,
                 choices: list[str], model: TrackedModel | None, cfg: AutoToMConfig,
                 likelihood: Likelihood | None = None, icfg: InferenceConfig | None = None) -> None:
        self.a = analysis
        self.steps = steps
        self.story = story
        self.question = question
        self.choices = choices
        self.model = model
        self.cfg = cfg
        self.agent_name = analysis.agent or "the narrator"
        #: the question's agents, outermost first: their names are not what a belief is about ("Where does Mia think
        #: Jacob thinks ..." against "Jacob, Charlotte and Mia entered the waiting_room.")
        self.names = " ".join(analysis.agents) or self.agent_name
        self.hypotheses: dict[str, list[str]] = {}
        self.traces: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.known = {k.variable: k.value for k in analysis.known}
        self.likelihood = likelihood
        self.icfg = icfg or InferenceConfig()
        self.by_index = {s.index: s for s in steps}
        self.outer = analysis.agents[-2] if len(analysis.agents) > 1 else None
        self._outer: dict[tuple[int, tuple[str, ...]], asyncio.Future[InferenceResult]] = {}
        self.states: list[str] | None = None
        #: the belief's values (the same at every step), set by `ground`; the persistence rule reads them
        self.belief_values: tuple[str, ...] = ()
        #: steps (by index) whose Observation is latent in a grounded model (factors.fixed_reason reads it)
        self.latent_observation: set[int] = set()
        #: (step index, Action or Utterance) where the story states the agent's act (not a hypothesis to weigh)
        self.observed_acts: set[tuple[int, str]] = set()

    @property
    def belief_of_state(self) -> bool:
        """The belief-of-state sub-inference runs: a higher-order question, the option on, a likelihood."""
        return self.cfg.belief_of_state and self.outer is not None and self.likelihood is not None

    @property
    def nested(self) -> bool:
        return (self.cfg.nested_observation or self.belief_of_state) and len(self.a.agents) > 1

    def outer_context(self, step: int) -> str:
        st = self.by_index.get(step)
        return f"What {self.outer} perceived of the story so far: {st.state}" if st is not None else ""

    async def outer_prior(self, st: Step, states: list[str]) -> list[float]:
        """P_A,t(s): the outer agent's posterior over the state hypotheses given what it perceived up to step
        t (one inference per step and hypothesis set, memoised; its requests go through the budget)."""
        key = (st.index, tuple(states))
        fut = self._outer.get(key)
        if fut is None:
            outer = self.outer or ""
            lik = self.likelihood
            assert lik is not None

            async def factor(var: str, value: str, parents: tuple[tuple[str, str], ...]) -> float:
                facts = tuple((labels()[p].format(agent=outer), v) for p, v in parents)
                return await lik(LikelihoodRequest(agent=outer, variable=labels()[var].format(agent=outer),
                                                   value=value, facts=facts))

            fut = asyncio.ensure_future(outer_state_posterior(factor, outer, st.state, states, self.icfg))
            self._outer[key] = fut
        return (await fut).posterior

    def belief_state_trace(self, chosen: InferenceResult) -> dict[str, Any]:
        """Both levels of the higher-order inference, explicitly: the outer agent's posterior over the world
        state per step, and the chosen model's posterior over the inner agent's belief (and the state)."""
        out: dict[str, Any] = {"outer": self.outer, "inner": self.agent_name, "state_hypotheses": self.states}
        if not self.states or len(self.states) < 2:
            out["note"] = "fewer than two distinct world states in the belief hypotheses: the state is not inferred"
        outer_steps = []
        for (index, states), fut in sorted(self._outer.items()):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                post = fut.result().posterior
                outer_steps.append({"step": index, "perceived": self.by_index[index].state,
                                    "posterior": dict(zip(states, post))})
        out["outer_posterior"] = outer_steps
        chains = chosen.trace
        last = chains[0]["steps"][-1] if chains and chains[0]["steps"] else {}
        if self.a.slot == BELIEF:
            out["inner_belief"] = dict(zip(self.a.statements, chosen.posterior))
        else:
            out["inner_belief"] = last.get("marginals", {}).get(BELIEF)
        first = chains[0] if chains else {"given": {}, "steps": []}
        out["state_given_evidence"] = [{"step": s["index"], "given": first["given"], "posterior": s["marginals"][STATE]}
                                       for s in first["steps"] if STATE in s.get("marginals", {})]
        return out

    def label(self, var: str) -> str:
        """How a variable is named in likelihood prompts; for the nested sub-inference, State and
        Observation are the outer agent's beliefs about them."""
        if self.nested and var in (STATE, OBS):
            return labels()[f"Nested{var}"].format(agent=self.agent_name, outer=self.a.agents[-2])
        return labels()[var].format(agent=self.agent_name)

    def repair(self, variables: frozenset[str]) -> frozenset[str]:
        """The nearest valid model for this question's query and timeline (model_space.valid_model)."""
        has_utt = any(s.utterance for s in self.steps)
        has_act = any(s.action for s in self.steps)
        return valid_model(variables, self.a.slot, prefer_utterance=has_utt and not has_act)

    def effective(self, spec: ModelSpec) -> ModelSpec:
        """`spec` without the variables that add no node with a factor at its timesteps: an Action or Utterance
        that no modelled step has (and the query is not), a Goal that neither an Action nor an Utterance node
        depends on, that the question already states, or for which no hypothesis was found; and the window's first
        steps that carry no evidence (`no_evidence_at`). Its grounded model is the same, so it is evaluated as
        that model: no hypotheses proposed and no requests, and the discovery sees U fall by alpha (no gain)."""
        used, slot, v = self.steps[spec.start:], self.a.slot, set(spec.variables)
        if ACTION in v and slot != ACTION and not any(s.action for s in used):
            v.discard(ACTION)
        if UTTER in v and slot != UTTER and not any(s.utterance for s in used):
            v.discard(UTTER)
        goal_has_child = slot in (ACTION, UTTER) or (ACTION in v and any(s.action for s in used)) \
            or (UTTER in v and any(s.utterance for s in used))
        no_goals = self.hypotheses.get(GOAL) == []  # proposed, and none found: the ground model has no Goal
        if GOAL in v and slot != GOAL and ("goal" in self.known or not goal_has_child or no_goals):
            v.discard(GOAL)
        start = spec.start
        while start < len(self.steps) - 1 and self.no_evidence_at(self.steps[start], frozenset(v)):
            start += 1
        if v == spec.variables and start == spec.start:
            return spec
        return replace(spec, variables=frozenset(v), start=start)

    def observed_at(self, st: Step) -> str | None:
        """What the agent observed at `st`: the timeline's observation, opened by the agent's own act at the step
        before when that act bears on the belief (rule `own_acts_observed`, `own_act_bears_on`); a latent (None)
        observation stays latent."""
        observation = st.observation
        prev = self.by_index.get(st.index - 1)
        act = (prev.action or prev.utterance) if prev is not None else None
        if act is None or observation is None or "own_acts_observed" not in self.cfg.rules \
                or not own_act_bears_on(prev, self.belief_values, self.names, self.cfg.rules):  # type: ignore[arg-type]
            return observation
        return act if observation in (NOTHING_NEW, NO_OBSERVATION) else f"{act} {observation}"

    def asks_perception(self, observation: str) -> bool:
        """In a nested model, whether the inner agent's perception of this observation is inferred (latent, {what
        happened, no observation}) rather than assumed. An observation that cannot move the belief (nothing new, or
        unrelated to the belief hypotheses, as the persistence rule reads them) is taken as perceived: whichever
        branch held, the belief's factor would be the same for every hypothesis, so asking it would only cost the
        outer agent's belief of the state and both branches' requests (22 for a Hi-ToM step with seven
        containers, on "Charlotte lost his phone. The apple is in the blue_pantry.")."""
        if not self.nested or observation == NOTHING_NEW:
            return False
        return not (self.cfg.persistence == "unrelated" and "unmoving_perception" in self.cfg.rules
                    and unrelated(observation, self.belief_values, rules=self.cfg.rules))

    def no_evidence_at(self, st: Step, variables: frozenset[str]) -> bool:
        """Whether step `st`, as the first step of a window, carries no evidence: every factor there is fixed to the
        same value for every belief (factors.py: nothing new or an unrelated observation at a window's first step, an
        observed act unrelated to the belief). The belief it passes on is then uniform, which is no belief at all,
        so the window from the next step is the same model: extending the time back over it asks nothing (a Hi-ToM
        item spent its last 26 requests on 49 transitions from such a uniform belief). Only with the belief's
        values known (set by `ground`) and the default persistence rule."""
        hyps, cfg = self.belief_values, self.cfg
        if BELIEF not in variables or len(hyps) < 2 or cfg.persistence != "unrelated" \
                or "no_evidence_window" not in cfg.rules:
            return False
        if OBS in variables:
            observation = self.observed_at(st)
            if observation is None:  # latent: its branches are weighed
                return False
            latent = self.asks_perception(observation)
            if fixed_reason(BELIEF, ((OBS, observation),), hyps, cfg.persistence, latent, rules=cfg.rules) is None:
                return False
        parents = ((GOAL, ""), (BELIEF, hyps[0])) if GOAL in variables else ((BELIEF, hyps[0]),)
        for var, act in ((ACTION, st.action), (UTTER, st.utterance)):
            if var in variables and act and fixed_reason(var, parents, hyps, cfg.persistence, value=act,
                                                         act_observed=True, names=self.names, rules=cfg.rules) is None:
                return False
        return True

    def candidates(self) -> list[str]:
        out = [v for v in ALL_VARIABLES if v != STATE]
        if not any(s.utterance for s in self.steps) and self.a.slot != UTTER:
            out.remove(UTTER)
        if not any(s.action for s in self.steps) and self.a.slot != ACTION:
            out.remove(ACTION)
        return out

    async def propose(self, var: str) -> list[str]:
        lock = self._locks.setdefault(var, asyncio.Lock())
        async with lock:
            if var in self.hypotheses:
                return self.hypotheses[var]
            k, n = self.cfg.k_hypotheses, len(self.choices)
            fallback = self.fallback_hypotheses(var)
            value: _Hypotheses | None = None
            if self.cfg.llm_steps and self.model is not None:
                prompt = render("hypotheses", story=self.story, question=self.question, k=k, n=k * n,
                                agent=self.agent_name, variable=var.lower(),
                                choices="\n".join(f"{i + 1}. {c}" for i, c in enumerate(self.a.statements)))

                def check(h: _Hypotheses) -> None:
                    usable = {x.strip().lower() for x in h.hypotheses if len(re.findall(r"[A-Za-z]+", x)) >= 3}
                    if len(usable) < min(2, k * n):
                        raise ValueError("give at least two different hypotheses, each a sentence of 3+ words")
                    if var == GOAL and "restating_goals" in self.cfg.rules \
                            and all(self.restates_a_choice(x) for x in h.hypotheses):
                        raise ValueError(f"a goal is what {self.agent_name} wants, not an answer to the question: "
                                         "do not restate the choices")

                value, self.traces[var] = await structured_step(
                    self.model, [{"role": "user", "content": prompt}], _Hypotheses, check=check,
                    max_tokens=min(50 * k * n, 400), constrained=self.cfg.constrained,
                    json_schema={"type": "object", "required": ["hypotheses"], "properties": {"hypotheses": {
                        "type": "array", "minItems": 1, "maxItems": k * n,
                        "items": {"type": "string", "maxLength": 160}}}})
            proposed = [h.strip() for h in value.hypotheses] if value else fallback
            if value is not None and "reasons_cut" in self.cfg.rules:
                proposed = self.without_reasons(var, proposed)
            hyps: list[str] = []
            for h in proposed:
                if len(re.findall(r"[A-Za-z]+", h)) >= 3 and h.lower() not in {x.lower() for x in hyps}:
                    hyps.append(h)
            if var == GOAL and value is not None and "restating_goals" in self.cfg.rules:
                restating = [h for h in hyps if self.restates_a_choice(h)]
                if restating:
                    self.traces.setdefault(var, {})["restating_dropped"] = restating
                    hyps = [h for h in hyps if h not in restating]
            self.hypotheses[var] = hyps[: max(k * n, 1)] or fallback
            return self.hypotheses[var]

    def without_reasons(self, var: str, proposed: list[str]) -> list[str]:
        """The proposed hypotheses without their "because ..." reasons (wording.claim; counted in the trace as
        `reasons_cut`), unless the reasons are what tells them apart (then they are kept whole). The proposal
        prompt sees the whole story, so a reason can state what the agent never perceived."""
        claims = [claim(h) for h in proposed]
        cut = sum(c != h for c, h in zip(claims, proposed))
        if not cut or len({c.lower() for c in claims}) < len({h.lower() for h in proposed}):
            return proposed
        self.traces.setdefault(var, {})["reasons_cut"] = cut
        return claims

    def restates_a_choice(self, hypothesis: str) -> bool:
        """A proposed goal that says what a choice of the query says is that answer, not a goal: with the
        query's own action as its only evidence it would make the inference circular (wording.restates). Each
        choice is also read with the question before it, so a goal naming one member of a grouped hypothesis ("Jacob
        thinks ... the green_pepper is in the red_bathtub", the group "one of: ..., red_bathtub, ...") restates it."""
        if self.a.slot == GOAL:
            return False
        return any(restates(hypothesis, s) for s in
                   [*self.a.statements, *(f"{self.question} {m}" for c in self.choices for m in group_members(c))])

    def fallback_hypotheses(self, var: str) -> list[str]:
        """Documented fallback when no usable proposal comes back.

        Belief: one belief per choice that would make it right ("Sally believes this is so: <statement>"),
        so the belief stays tied to what is asked. Goal: the latest goal the per-step extraction found,
        else the story's own sentence about what the agent wants or tries (one hypothesis, so it acts as observed), else none: the Goal is then left out of the
        model (a goal made up from the choices would be an action, not a goal).
        """
        agent = self.agent_name
        if var == BELIEF:
            return [f"{agent} believes this is so: {s.rstrip('.')}." for s in self.a.statements]
        stated = [s.goal for s in self.steps if s.goal]  # goals the per-step extraction found
        if stated:
            return stated[-1:]
        for sentence in split_sentences(self.story):
            if agent.lower() in sentence.lower() and re.search(r"\b(wants?|trying to|tries to|goal|plans? to|needs? to)\b",
                                                               sentence, re.I):
                return [sentence]
        return []

    async def ground(self, spec: ModelSpec) -> ProblemModel:
        a, slot, V = self.a, self.a.slot, spec.variables
        used = self.steps[spec.start:]
        constant: dict[str, Node] = {}
        if slot == GOAL:
            constant[GOAL] = Node(GOAL, list(a.statements))
        elif "goal" in self.known:
            constant[GOAL] = Node(GOAL, [self.known["goal"]], observed=True)
        elif GOAL in V:
            goals = await self.propose(GOAL)
            if goals:  # no goal to hypothesise: the model is the same as without Goal
                constant[GOAL] = Node(GOAL, goals)
        belief_values: list[str] | None = None
        if slot == BELIEF:
            belief_values = list(a.statements)
        elif "belief" in self.known:
            belief_values = [self.known["belief"]]
        elif BELIEF in V:
            belief_values = await self.propose(BELIEF)
        if belief_values is not None:
            self.belief_values = tuple(belief_values)
        def observation_of(j: int, st: Step) -> str | None:
            observation = self.observed_at(st)
            own = st.action or st.utterance
            if j == len(used) - 1 and slot in (ACTION, UTTER) and own and observation not in (None, NOTHING_NEW):
                # it already happened; the query is what comes next. Beside nothing new it is not an observation of
                # the world (it was "nothing new <own act>", so the persistence rule never applied there)
                observation = f"{observation} {own}".strip()
            return observation

        priors: dict[int, list[float]] = {}
        if self.belief_of_state and STATE in V and OBS in V and belief_values:
            self.states = state_hypotheses(belief_values, list(a.agents))
            if len(self.states) >= 2:
                # State is latent only where the inner agent's Observation is (it is its only child)
                latent_obs = [st for j, st in enumerate(used)
                              if (o := observation_of(j, st)) is None or self.asks_perception(o)]
                states = self.states
                got = await gather_settled([self.outer_prior(st, states) for st in latent_obs])
                priors = {st.index: p for st, p in zip(latent_obs, got)}
        out: list[StepModel] = []
        for j, st in enumerate(used):
            final = j == len(used) - 1
            nodes: dict[str, Node] = {}
            if STATE in V and st.index in priors and self.states:
                # the world as the outer agent believes it at this step (belief_state.py)
                nodes[STATE] = Node(STATE, list(self.states), prior=priors[st.index])
            elif STATE in V:
                nodes[STATE] = Node(STATE, [st.state], observed=True)
            observation = observation_of(j, st)
            if OBS in V:
                if observation is not None and self.asks_perception(observation):
                    # did the inner agent perceive it, as the outer agent believes? (inferred, not assumed)
                    nodes[OBS] = Node(OBS, [observation, NO_OBSERVATION])
                elif observation is not None:
                    nodes[OBS] = Node(OBS, [observation], observed=True)
                else:
                    nodes[OBS] = Node(OBS, [st.events, NO_OBSERVATION])
                if not nodes[OBS].observed:
                    self.latent_observation.add(st.index)
            if belief_values is not None:
                nodes[BELIEF] = Node(BELIEF, belief_values, observed=len(belief_values) == 1 and slot != BELIEF)
            if final and slot in (ACTION, UTTER):
                nodes[slot] = Node(slot, list(a.statements))
            else:
                if ACTION in V and st.action:
                    nodes[ACTION] = Node(ACTION, [st.action], observed=True)
                    self.observed_acts.add((st.index, ACTION))
                if UTTER in V and st.utterance:
                    nodes[UTTER] = Node(UTTER, [st.utterance], observed=True)
                    self.observed_acts.add((st.index, UTTER))
            out.append(StepModel(st.index, nodes))
        return ProblemModel(self.agent_name, out, slot, constant=constant)
