"""Engine v2 guards with scripted likelihoods: model validity, belief persistence, the budget (initial model
included), alpha charged once, choice filtering, utterances without quotes, condensation not truncation."""

from __future__ import annotations

from pathlib import Path

import pytest

from thoughttrace.llm import get_model
from thoughttrace.tom.autotom import AutoToM, AutoToMConfig, choices_in_story, condense
from thoughttrace.tom.benchmarks import BENCHMARKS, load_uniform
from thoughttrace.tom.discovery import ModelSpec, discover
from thoughttrace.tom.factors import NOTHING, fixed_factor
from thoughttrace.tom.items import select
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood
from thoughttrace.tom.model_space import ACTION, BELIEF, GOAL, OBS, STATE, UTTER, answerable, valid_model
from thoughttrace.tom.rules import with_rules
from thoughttrace.tom.timeline import NOTHING_NEW, PerceptionResult, Step, build_timeline, is_utterance

from .scripted import CHOICES, STORY, competent_model


def test_every_repaired_model_can_answer_its_query() -> None:
    assert not answerable({STATE, BELIEF}, BELIEF)
    assert valid_model({STATE, BELIEF}, BELIEF) == {STATE, OBS, BELIEF}
    assert not answerable({STATE, ACTION}, ACTION)
    assert valid_model({STATE, ACTION}, ACTION) == {STATE, OBS, BELIEF, ACTION}
    # a Goal needs an Action (or an Utterance when the story has only utterances) to explain
    assert valid_model({STATE, OBS, BELIEF, GOAL}, BELIEF) == {STATE, OBS, BELIEF, GOAL, ACTION}
    assert valid_model({STATE, GOAL}, GOAL, prefer_utterance=True) == {STATE, GOAL, UTTER}
    for query in (BELIEF, ACTION, GOAL, UTTER):
        for extra in ([], [GOAL], [ACTION], [UTTER], [GOAL, UTTER]):
            assert answerable(valid_model({STATE, *extra}, query), query)


async def test_discovery_only_tries_valid_models() -> None:
    """The initial model {State, Belief} of an action query and 'add Goal' without Action never run."""
    tried: list[frozenset[str]] = []

    def lik(req: LikelihoodRequest) -> float:
        return 0.5

    model = get_model("scripted", cache=False, default="{}")
    method = AutoToM(AutoToMConfig(llm_steps=False), likelihood=ScriptedLikelihood(lik))
    ans = await method.solve(model, STORY, "Where will Sally look for the ball?", CHOICES)
    for h in ans.trace["discovery"]["history"]:
        if "variables" in h:
            tried.append(frozenset(h["variables"]))
            assert answerable(h["variables"], ACTION), h
            if GOAL in h["variables"]:
                assert ACTION in h["variables"] or UTTER in h["variables"]
    assert tried


def test_belief_persists_without_an_observation() -> None:
    prev = (("PrevBelief", "x"), (OBS, NOTHING_NEW))
    assert fixed_factor(BELIEF, "x", prev) == (1.0, NOTHING) and fixed_factor(BELIEF, "y", prev) == (0.0, NOTHING)
    assert fixed_factor(BELIEF, "x", (("PrevBelief", "x"),)) == (1.0, NOTHING)  # no Observation in the model
    assert fixed_factor(BELIEF, "x", (("PrevBelief", "x"), (OBS, "Anne moved the ball."))) is None
    # first step: no previous belief (the default rules call it no evidence, every value alike)
    assert fixed_factor(BELIEF, "x", ((OBS, NOTHING_NEW),), rule="nothing-observed") is None
    assert fixed_factor(ACTION, "a", (("PrevBelief", "x"),)) is None


async def test_no_transition_is_asked_for_a_step_without_observation() -> None:
    calls: list[LikelihoodRequest] = []

    def lik(req: LikelihoodRequest) -> float:
        calls.append(req)
        return 0.9 if "basket" in req.value and "basket" in str(req.facts) else 0.3

    sentences = [f"Ann looked at shelf {i}." for i in range(6)] + ["The ball is in the basket."]
    story = " ".join(sentences[-1:] + sentences[:-1])
    method = AutoToM(AutoToMConfig(llm_steps=False, threshold=0.0), likelihood=ScriptedLikelihood(lik))
    ans = await method.solve(None, story, "Where does Ann think the ball is?", ["basket", "box"])
    transitions = [r for r in calls if any(label.endswith("believed before") for label, _ in r.facts)]
    assert not any("nothing new" in str(r.facts) or "no observation" in str(r.facts) for r in transitions)
    assert ans.trace["fixed_factors"] > 0


def _garbage():
    return get_model("scripted", cache=False, outputs=["nonsense", '{"agents": 3}', "{}"],
                     logprobs={"Likely": 0.4, "Unlikely": 0.35, "Sure": 0.25})


@pytest.mark.parametrize("budget", [4, 12])
async def test_the_budget_holds_for_every_dev_question_initial_model_included(tom_dir: Path, budget: int) -> None:
    """Distinct likelihood requests actually sent never exceed the budget, on every benchmark's items."""
    items = []
    for bench in BENCHMARKS:
        items += select(load_uniform(tom_dir, bench), split="dev", limit=2)
    for it in items:
        sent: list[LikelihoodRequest] = []

        def lik(req: LikelihoodRequest, sent: list[LikelihoodRequest] = sent) -> float:
            sent.append(req)
            return 0.2 + 0.6 * (len(req.value) % 7) / 7

        method = AutoToM(AutoToMConfig(likelihood_budget=budget, llm_steps=False), likelihood=ScriptedLikelihood(lik))
        ans = await method.solve(_garbage(), it.story, it.question, it.choices)
        assert ans.error is None, it.id
        assert len(set(sent)) <= budget, (it.id, len(set(sent)))
        assert ans.trace["likelihood_requests"] == len(set(sent))
        if ans.trace["discovery"]["stopped_because"] == "budget":
            assert len(set(sent)) >= budget - 4 * len(it.choices) ** 2 or not ans.trace["discovery"]["history"]


async def test_budget_counts_the_initial_model() -> None:
    """A budget smaller than the initial model: nothing beyond it is sent, the answer is an honest tie."""
    sent: list[LikelihoodRequest] = []

    def lik(req: LikelihoodRequest) -> float:
        sent.append(req)
        return 0.9

    method = AutoToM(AutoToMConfig(likelihood_budget=1, llm_steps=False), likelihood=ScriptedLikelihood(lik))
    ans = await method.solve(None, STORY, "Where does Sally think the ball is?", CHOICES)
    assert len(set(sent)) <= 1
    assert ans.trace["discovery"]["stopped_because"] == "budget" and ans.is_tie


async def test_alpha_is_charged_once() -> None:
    """A variable that lowers the entropy by 1.5 alpha raises U by 0.5 alpha: it is added."""
    base = frozenset({STATE, OBS, BELIEF})
    import math

    from thoughttrace.tom.inference import entropy

    target = entropy([0.5, 0.5]) - 0.03  # gain of 0.03 nats = 1.5 * alpha
    lo, hi = 0.5, 0.99
    for _ in range(60):
        mid = (lo + hi) / 2
        if entropy([mid, 1 - mid]) > target:
            lo = mid
        else:
            hi = mid
    p = (lo + hi) / 2
    assert math.isclose(entropy([p, 1 - p]), target, abs_tol=1e-6)

    async def evaluate(spec: ModelSpec) -> list[float]:
        return [p, 1 - p] if GOAL in spec.variables else [0.5, 0.5]

    res = await discover(ModelSpec(base, 0), evaluate, candidates=[GOAL], alpha=0.02)
    assert GOAL in res.spec.variables


async def test_calls_are_attributed_to_their_question() -> None:
    """Every backend call a question makes is finished and counted before its answer returns."""
    model = competent_model()
    ans = await AutoToM(AutoToMConfig(likelihood_budget=3)).solve(model, STORY, "Where does Sally think the ball is?",
                                                                  CHOICES)
    assert ans.usage.calls == len(model.backend.requests)


def test_choices_that_name_nothing_in_the_story_are_filtered() -> None:
    story = "1 Ava entered the den.\n2 The pear is in the red_box.\n3 Ava moved the pear to the blue_crate."
    assert choices_in_story(story, ["green_drawer", "red_box", "blue_crate", "red_crate"]) == [1, 2]
    # sentences are never filtered; fewer than two left keeps them all
    assert choices_in_story(story, ["Ava thinks it is gone.", "red_box"]) == [0, 1]
    assert choices_in_story(story, ["green_drawer", "red_box"]) == [0, 1]


async def test_filtered_choices_get_zero_and_are_recorded() -> None:
    story = "1 Ava entered the den.\n2 The pear is in the red_box.\n3 The red_box is beside the tin.\n4 Ava exited the den."
    choices = ["green_drawer", "red_box", "tin", "blue_crate"]
    method = AutoToM(AutoToMConfig(llm_steps=False, rules=with_rules("choice_filter")),
                     likelihood=ScriptedLikelihood(lambda r: 0.6))
    ans = await method.solve(None, story, "Where does Ava think the pear is?", choices)
    assert ans.trace["choices_filtered"] == ["green_drawer", "blue_crate"]
    assert ans.posterior[0] == 0.0 and ans.posterior[3] == 0.0 and sum(ans.posterior[1:3]) == pytest.approx(1.0)
    # off by default (issue 28): a choice the story never names may be the answer ("Not Given")
    default = await AutoToM(AutoToMConfig(llm_steps=False), likelihood=ScriptedLikelihood(lambda r: 0.6)).solve(
        None, story, "Where does Ava think the pear is?", choices)
    assert default.trace["choices_filtered"] == [] and all(p > 0 for p in default.posterior)


def test_utterances_with_or_without_quotes() -> None:
    assert is_utterance('Ann said, "The key is in the drawer."')
    assert is_utterance("Ann told Bob that the key is in the drawer.")
    assert is_utterance("Mary asked where the wine might be.")
    assert is_utterance("Ann: the key is in the drawer.")
    assert not is_utterance("Ann put the key in the drawer.")
    assert not is_utterance("What's inside the apartment: a kitchen.")
    sentences = ["Ann walked in.", "Ann told Bob the key is in the drawer.", "Bob left."]
    steps = build_timeline(sentences, PerceptionResult(observed=[0, 1, 2], actions=[0, 1]))
    assert steps[1].utterance and steps[1].action is None


def test_long_timelines_are_condensed_not_dropped() -> None:
    steps = [Step(i, [f"s{i}"], f"upto{i}", f"o{i}" if i % 2 else NOTHING_NEW, f"e{i}", action=f"a{i}")
             for i in range(8)]
    out, info = condense(steps, 3)
    assert len(out) == 3 and info == {"merged_steps": 6, "kept_steps": 2, "max_steps": 3}
    assert out[0].observation is not None
    for i in range(6):  # every earlier observation and action is still there
        assert f"a{i}" in out[0].observation and (i % 2 == 0 or f"o{i}" in out[0].observation)
    assert out[0].sentences == [f"s{i}" for i in range(6)]
    assert [s.action for s in out[1:]] == ["a6", "a7"]


async def test_default_keeps_every_step() -> None:
    sentences = [f"Ann looked at shelf {i}." for i in range(9)] + ["The ball is in the basket."]
    method = AutoToM(AutoToMConfig(llm_steps=False), likelihood=ScriptedLikelihood(lambda r: 0.5))
    ans = await method.solve(None, " ".join(sentences), "Where does Ann think the ball is?", ["basket", "box"])
    assert "condensed" not in ans.trace and len(ans.trace["timeline"]) == 10


async def test_no_request_is_left_in_flight_when_the_budget_stops_a_model() -> None:
    """A model refused part-way by the budget waits for its requests already sent, so each is finished
    (and counted to this question) before the answer returns."""
    import asyncio

    state = {"started": 0, "finished": 0}

    class Slow:
        async def __call__(self, request: LikelihoodRequest) -> float:
            state["started"] += 1
            await asyncio.sleep(0.02)
            state["finished"] += 1
            return 0.9 if "basket" in request.value and "basket" in str(request.facts) else 0.5

    story = ("1 Sally entered the kitchen.\n2 The ball is in the basket.\n3 Anne entered the kitchen.\n"
             "4 Sally exited the kitchen.\n5 Anne moved the ball to the box.")
    method = AutoToM(AutoToMConfig(llm_steps=False, likelihood_budget=3, threshold=0.0), likelihood=Slow())
    ans = await method.solve(None, story, "Where does Sally think the ball is?", CHOICES)
    assert ans.trace["discovery"]["stopped_because"] == "budget"
    assert state["started"] == state["finished"] == ans.trace["likelihood_requests"]


async def test_nested_question_infers_what_the_outer_agent_believes_the_inner_agent_observed() -> None:
    """With nested_observation, the inner agent's observation is a latent belief of the outer agent: if Anne
    believes Sally did not see the ball go into the basket, Anne's view of Sally's belief stays open."""
    seen: list[LikelihoodRequest] = []

    def lik(req: LikelihoodRequest) -> float:
        seen.append(req)
        facts = dict(req.facts)
        if req.variable == "What Anne believes Sally perceived":
            return 0.1 if req.value != "no observation" else 0.9  # Anne thinks Sally saw little
        perceived = facts.get("What Anne believes Sally perceived", facts.get("What Sally perceived", ""))
        if "basket" in perceived:
            return 0.9 if "basket" in req.value else 0.1
        return 0.5

    story = ("1 Anne entered the kitchen.\n2 Sally entered the kitchen.\n3 The ball is in the basket.\n"
             "4 Sally exited the kitchen.")
    q = "Where does Anne think that Sally thinks the ball is?"
    perception = {"Anne": {"observed": [1, 2, 3, 4], "actions": [1]},
                  "Sally": {"observed": [1, 2, 3, 4], "actions": [2, 4]}}
    # nested_observation alone (the belief-of-state sub-inference, on by default, is tested in
    # test_belief_of_state.py)
    off = AutoToM(AutoToMConfig(threshold=0.0, belief_of_state=False), likelihood=ScriptedLikelihood(lik))
    on = AutoToM(AutoToMConfig(threshold=0.0, nested_observation=True, belief_of_state=False),
                 likelihood=ScriptedLikelihood(lik))
    a_off = await off.solve(competent_model(agents=["Anne", "Sally"], perception=perception), story, q, CHOICES)
    a_on = await on.solve(competent_model(agents=["Anne", "Sally"], perception=perception), story, q, CHOICES)
    assert a_on.trace["belief_of_state"]["outer"] == "Anne"
    assert any(r.variable == "What Anne believes Sally perceived" for r in seen)
    # the sub-inference moves the answer towards "no idea" compared with assuming Sally saw it all
    assert abs(a_on.posterior[0] - 0.5) < abs(a_off.posterior[0] - 0.5)
