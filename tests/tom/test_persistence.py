"""The persistence rule for observations unrelated to the belief hypotheses (factors.py), with scripted
likelihoods: a transition the rule fixes is never asked, and an observation that names what tells the
hypotheses apart, or hypotheses told apart only by a negation, are always asked."""

from __future__ import annotations

import pytest

from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.factors import (
    ACT_UNRELATED,
    NO_EVIDENCE,
    NO_EVIDENCE_UNRELATED,
    NOTHING,
    UNRELATED,
    fixed_factor,
    telling_apart,
    unrelated,
)
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood
from thoughttrace.tom.model_space import ACTION, BELIEF, GOAL, OBS, PREV_BELIEF, UTTER

from .scripted import STORY as STORY_SALLY
from .scripted import competent_model

CABINET = ["John believed that there was a tomato inside the kitchen cabinet",
           "John believed that there was wine inside the kitchen cabinet",
           "John believed that there was a potato inside the kitchen cabinet"]


def test_what_tells_the_hypotheses_apart() -> None:
    assert telling_apart(tuple(CABINET)) == {"tomato", "wine", "potato"}
    assert unrelated("Mary returned to the kitchen and walked towards a kitchen cabinet.", CABINET)
    assert not unrelated('Mary asked, "Any idea where the wine might be?"', CABINET)
    assert not unrelated("Mary put two potatoes on the table.", CABINET)  # plural of a telling word
    # names with underscores are one word: the shared "green" of green_pepper tells nothing apart
    where = ["Jacob thinks the green_pepper is in the red_box", "Jacob thinks the green_pepper is in the blue_box"]
    assert telling_apart(tuple(where)) == {"red_box", "blue_box"}
    assert unrelated("Mia stayed in the porch for 1 minute.", where)
    assert not unrelated("The green_pepper is in the blue_box.", where)
    assert not unrelated("Mia moved the green_pepper to the blue_box.", where)
    # another object's place says nothing about the green_pepper's, though it names one of its containers
    assert unrelated("The apple is in the blue_box.", where)
    assert unrelated("Mia lost her phone. Mia moved the apple to the blue_box.", where)
    assert not unrelated("The apple is in the blue_box. The green_pepper is in the red_box.", where)
    assert not unrelated("Mary put the wine in the fridge.", CABINET)  # the object the hypotheses name
    assert not unrelated("Sarah mentioned it was in the blue_box.", where)  # "it" may be the green_pepper


@pytest.mark.parametrize("hypotheses", [
    ["There is a wine glass inside the cabinet", "There isn't a wine glass inside the cabinet"],
    ["Anne thinks the ball is in the box", "Anne does not think the ball is in the box"],
    ["John believes the wine is in the fridge", "John doesn't know where the beer is"],  # each its own, one negated
    ["Anne thinks the ball is in the box", "Anne thinks the ball is in the box or the basket"],  # nothing of its own
    ["Anne thinks the ball is in the box"],
])
def test_the_rule_is_off_where_the_words_cannot_tell(hypotheses: list[str]) -> None:
    assert telling_apart(tuple(hypotheses)) is None
    assert not unrelated("Anne opened the cabinet.", hypotheses)
    parents = ((PREV_BELIEF, hypotheses[0]), (OBS, "Anne opened the cabinet."))
    assert fixed_factor(BELIEF, hypotheses[0], parents, hypotheses) is None


def test_the_factor_says_why_it_is_fixed() -> None:
    prev = ((PREV_BELIEF, CABINET[1]), (OBS, "Mary walked to the fridge."))
    assert fixed_factor(BELIEF, CABINET[1], prev, CABINET) == (1.0, UNRELATED)
    assert fixed_factor(BELIEF, CABINET[0], prev, CABINET) == (0.0, UNRELATED)
    assert fixed_factor(BELIEF, CABINET[1], prev) is None  # without the hypotheses: the literal rule only
    assert fixed_factor(BELIEF, CABINET[1], ((PREV_BELIEF, CABINET[1]), (OBS, "nothing new")), CABINET) == (1.0, NOTHING)
    # no previous belief: the first step of a window, where an unrelated observation is no evidence either
    assert fixed_factor(BELIEF, CABINET[1], ((OBS, "Mary walked to the fridge."),), CABINET) \
        == (1.0, NO_EVIDENCE_UNRELATED)


STORY = "The ball is in the basket. Ann looked at the shelf. {event} Ann looked at the door."


def _noisy(calls: list[LikelihoodRequest]):
    """A likelihood that sees the ball where it was perceived, and whose transitions flip the belief: asked
    at the step with the unrelated event, it would turn a right answer into a wrong one."""

    def lik(req: LikelihoodRequest) -> float:
        calls.append(req)
        facts = dict(req.facts)
        before = next((v for k, v in facts.items() if k.endswith("believed before")), None)
        if before is not None:
            return 0.1 if req.value == before else 0.9
        return 0.9 if "basket" in req.value and "basket" in str(req.facts) else 0.3

    return lik


async def _solve(event: str, persistence: str) -> tuple[list[float], dict, list[LikelihoodRequest]]:
    calls: list[LikelihoodRequest] = []
    method = AutoToM(AutoToMConfig(llm_steps=False, persistence=persistence,  # type: ignore[arg-type]
                                   belief_transition="asked"),  # each transition asked: what the rules save
                     likelihood=ScriptedLikelihood(_noisy(calls)))
    ans = await method.solve(None, STORY.format(event=event), "Where does Ann think the ball is?", ["basket", "box"])
    assert ans.error is None
    return ans.posterior, ans.trace, calls


def _transitions(calls: list[LikelihoodRequest]) -> list[LikelihoodRequest]:
    return [r for r in calls if any(label.endswith("believed before") for label, _ in r.facts)]


async def test_an_unrelated_observation_leaves_the_belief_unchanged_and_costs_nothing() -> None:
    post, trace, calls = await _solve("A dog barked in the garden.", "unrelated")
    assert not _transitions(calls)
    assert trace["fixed_by_rule"].get(UNRELATED, 0) == 4  # 2 x 2 transitions at the dog's step
    assert trace["fixed_factors"] == sum(trace["fixed_by_rule"].values())
    assert post[0] > 0.6  # what the first step saw (the ball in the basket), carried unchanged
    # the literal rule asks them, and the noisy transitions pull the belief away from what Ann saw
    post_literal, trace_literal, calls_literal = await _solve("A dog barked in the garden.", "nothing-observed")
    assert len(set(_transitions(calls_literal))) == 4 and UNRELATED not in trace_literal["fixed_by_rule"]
    assert post_literal[0] < post[0] - 0.15


async def test_an_observation_naming_a_hypothesis_is_asked() -> None:
    post, trace, calls = await _solve("A dog sniffed the box.", "unrelated")
    assert len(set(_transitions(calls))) == 4 and UNRELATED not in trace["fixed_by_rule"]


def test_no_evidence_at_a_windows_first_step() -> None:
    first = ((OBS, "nothing new"),)
    assert fixed_factor(BELIEF, CABINET[0], first, CABINET) == (1.0, NO_EVIDENCE)
    assert fixed_factor(BELIEF, CABINET[2], first, CABINET) == (1.0, NO_EVIDENCE)
    assert fixed_factor(BELIEF, CABINET[0], first, CABINET, rule="nothing-observed") is None
    # "no observation" is the latent alternative of an unknown observation, weighed against what was seen: asked
    assert fixed_factor(BELIEF, CABINET[0], ((OBS, "no observation"),), CABINET) is None
    # an observed observation that tells nothing apart is no evidence; a latent one, or a related one, is asked
    assert fixed_factor(BELIEF, CABINET[0], ((OBS, "Mary walked in."),), CABINET) == (1.0, NO_EVIDENCE_UNRELATED)
    assert fixed_factor(BELIEF, CABINET[0], ((OBS, "Mary walked in."),), CABINET, observation_latent=True) is None
    assert fixed_factor(BELIEF, CABINET[0], ((OBS, "Mary put the wine away."),), CABINET) is None
    assert fixed_factor(BELIEF, CABINET[0], ((OBS, "Mary walked in."),), CABINET, rule="nothing-observed") is None


async def test_a_window_starting_where_nothing_was_seen_asks_nothing_there() -> None:
    """Ann sees the ball, then nothing: the initial model at the last step has no evidence at all (uniform,
    no request), and the answer comes from the step where she saw it."""
    calls: list[LikelihoodRequest] = []

    def lik(req: LikelihoodRequest) -> float:
        calls.append(req)
        return 0.9 if "basket" in req.value and "basket" in str(req.facts) else 0.3

    model = competent_model(perception={"Sally": {"observed": [1, 2, 3], "actions": [1, 4]}})
    ans = await AutoToM(AutoToMConfig(), likelihood=ScriptedLikelihood(lik)).solve(
        model, STORY_SALLY, "Where does Sally think the ball is?", ["basket", "box"])
    assert not [r for r in calls if ("What Sally perceived", "nothing new") in r.facts]
    assert ans.trace["fixed_by_rule"].get(NO_EVIDENCE, 0) >= 2
    assert ans.trace["discovery"]["history"][0]["posterior"] == pytest.approx([0.5, 0.5])
    assert ans.letter == "A"


async def test_a_window_starting_at_an_unrelated_observation_asks_nothing_there() -> None:
    """Sally sees the ball, then only a dog barking: the initial model at the last step has no evidence (no
    request, uniform), the dog's step never reaches a prompt, and the answer comes from the ball's step."""
    story = "1 The ball is in the basket.\n2 Sally entered the kitchen.\n3 A dog barked.\n4 Sally looked at the window."
    calls: list[LikelihoodRequest] = []

    def lik(req: LikelihoodRequest) -> float:
        calls.append(req)
        return 0.9 if "basket" in req.value and "basket" in str(req.facts) else 0.3

    model = competent_model(perception={"Sally": {"observed": [1, 2, 3, 4], "actions": [2, 4]}})
    ans = await AutoToM(AutoToMConfig(), likelihood=ScriptedLikelihood(lik)).solve(
        model, story, "Where does Sally think the ball is?", ["basket", "box"])
    assert calls and not [r for r in calls if "dog" in str(r.facts)]
    assert ans.trace["fixed_by_rule"].get(NO_EVIDENCE_UNRELATED, 0) >= 2
    assert ans.trace["discovery"]["history"][0]["posterior"] == pytest.approx([0.5, 0.5])
    assert ans.letter == "A"
    literal = await AutoToM(AutoToMConfig(persistence="nothing-observed"), likelihood=ScriptedLikelihood(lik)).solve(
        competent_model(perception={"Sally": {"observed": [1, 2, 3, 4], "actions": [2, 4]}}), story,
        "Where does Sally think the ball is?", ["basket", "box"])
    assert NO_EVIDENCE_UNRELATED not in literal.trace["fixed_by_rule"]


async def test_an_unrelated_but_latent_observation_is_asked_at_a_windows_first_step() -> None:
    """Without a perception step every observation is latent ({what happened, no observation}): its branches are
    weighed against each other, so a fixed 1.0 for one of them would outweigh the other's asked values."""
    post, trace, calls = await _solve("A dog barked in the garden.", "unrelated")
    first = [r for r in calls if "dog" in str(r.facts) and r not in _transitions(calls)]
    assert first and NO_EVIDENCE_UNRELATED not in trace["fixed_by_rule"]


PEPPER = [f"Jacob really thinks the green_pepper is in the {c}." for c in ("blue_basket", "red_cupboard", "blue_pantry")]
MILK = ["Noor believes the milk pitcher contains oat milk.", "Noor believes the milk pitcher contains almond milk."]


def _act(act: str, hypotheses: list[str], agent: str, parents: tuple[tuple[str, str], ...] | None = None,
         **kw: object) -> tuple[float, str] | None:
    parents = ((BELIEF, hypotheses[0]),) if parents is None else parents
    kw.setdefault("act_observed", True)
    return fixed_factor(ACTION, act, parents, hypotheses, names=agent, **kw)  # type: ignore[arg-type]


def test_an_observed_act_unrelated_to_the_belief_is_no_evidence() -> None:
    assert _act("Jacob exited the porch.", PEPPER, "Jacob") == (1.0, ACT_UNRELATED)
    assert _act("Jacob made no movements and stayed in the master_bedroom for 1 minute.", PEPPER, "Jacob") \
        == (1.0, ACT_UNRELATED)
    assert fixed_factor(UTTER, "Jacob said hello.", ((BELIEF, PEPPER[1]),), PEPPER, act_observed=True,
                        names="Jacob") == (1.0, ACT_UNRELATED)
    # what the beliefs share (the object) or tell apart (a container) is evidence: asked
    assert _act("Jacob moved the green_pepper to the blue_basket.", PEPPER, "Jacob") is None
    assert _act("Jacob publicly claimed that the green_pepper is in the red_cupboard now.", PEPPER, "Jacob") is None
    assert _act("Jacob publicly claimed that apple is in the red_cupboard now.", PEPPER, "Jacob") \
        == (1.0, ACT_UNRELATED)  # a claim about another object
    assert _act("Noor grabs a milk pitcher and fills it.", MILK, "Noor") is None
    # a hypothetical act (the query's), an act a Goal may explain, or the literal rule: asked
    assert _act("Jacob exited the porch.", PEPPER, "Jacob", act_observed=False) is None
    assert _act("Jacob exited the porch.", PEPPER, "Jacob", ((GOAL, "Jacob wants to leave."), (BELIEF, PEPPER[0]))) is None
    assert _act("Jacob exited the porch.", PEPPER, "Jacob", rule="nothing-observed") is None
    # the agent's name is not what a belief is about; beliefs told apart by a negation never use the rule
    assert _act("Jacob waved.", PEPPER, "Jacob") == (1.0, ACT_UNRELATED)
    assert _act("Anne waved.", ["Anne thinks the ball is in the box.", "Anne thinks the ball is not in the box."],
                "Anne") is None
    # a nested question: the outer agent's name, in every hypothesis, is not what the belief is about either
    nested = [f"Where does Mia think Jacob thinks the green_pepper is: {c}" for c in ("blue_basket", "red_cupboard")]
    assert _act("Jacob, Charlotte and Mia entered the waiting_room.", nested, "Mia Jacob") == (1.0, ACT_UNRELATED)
    assert _act("Jacob, Charlotte and Mia entered the waiting_room.", nested, "Jacob") is None


ACT_STORY = "The ball is in the basket. Ann looked at the basket. {act} Bob walked in. Ann looked at the door."


async def _acts(act: str, persistence: str = "unrelated") -> tuple[dict, list[LikelihoodRequest]]:
    calls: list[LikelihoodRequest] = []

    def flat(req: LikelihoodRequest) -> float:  # never confident: the discovery walks back over every step
        calls.append(req)
        return 0.5

    method = AutoToM(AutoToMConfig(llm_steps=False, persistence=persistence),  # type: ignore[arg-type]
                     likelihood=ScriptedLikelihood(flat))
    ans = await method.solve(None, ACT_STORY.format(act=act), "Where will Ann look for the ball?", ["basket", "box"])
    assert ans.error is None
    return ans.trace, calls


async def test_an_unrelated_act_is_never_asked() -> None:
    trace, calls = await _acts("Ann waved at the window.")
    assert not [r for r in calls if "waved" in r.value]
    assert trace["fixed_by_rule"].get(ACT_UNRELATED, 0) >= 2  # each belief hypothesis at the waving step
    # the literal rule asks it, once per belief
    trace_literal, calls_literal = await _acts("Ann waved at the window.", "nothing-observed")
    assert len({r for r in calls_literal if "waved" in r.value}) == 2
    assert ACT_UNRELATED not in trace_literal["fixed_by_rule"]
    # an act on the ball is asked
    trace_ball, calls_ball = await _acts("Ann kicked the ball.")
    assert len({r for r in calls_ball if "kicked" in r.value}) == 2
    assert ACT_UNRELATED not in trace_ball["fixed_by_rule"]


async def test_extending_the_window_over_steps_without_evidence_asks_nothing() -> None:
    """Sally enters, a dog barks, she waves (no evidence about the ball: all fixed), then she sees the ball. With a
    likelihood that is never confident the discovery walks back to the first step; from the steps without evidence
    the belief it would carry is uniform, which is no belief, so the window from the ball's step is the same model
    and the ball's step is never asked as a transition from a uniform belief (2 requests, not 2 + 4)."""
    story = ("1 Sally entered the kitchen.\n2 A dog barked.\n3 Sally waved.\n4 The ball is in the basket.\n"
             "5 Sally looked at the window.\n6 The cat slept.")
    perception = {"Sally": {"observed": [1, 2, 3, 4, 5, 6], "actions": [1, 3, 5]}}

    async def run(persistence: str) -> tuple[dict, list[LikelihoodRequest]]:
        calls: list[LikelihoodRequest] = []

        def flat(req: LikelihoodRequest) -> float:
            calls.append(req)
            return 0.5

        ans = await AutoToM(AutoToMConfig(persistence=persistence,  # type: ignore[arg-type]
                                          belief_transition="asked"),
                            likelihood=ScriptedLikelihood(flat)).solve(
            competent_model(perception=perception), story, "Where does Sally think the ball is?", ["basket", "box"])
        assert ans.error is None
        return ans.trace, calls

    trace, calls = await run("unrelated")
    assert [h["start"] for h in trace["discovery"]["history"] if h["phase"] == "extend-time"][-1] == 0
    assert not _transitions(calls)
    assert trace["likelihood_requests"] == 2  # P(belief | the ball in the basket), once per hypothesis
    _, literal = await run("nothing-observed")
    assert _transitions(literal)
