"""A proposed goal that restates an answer choice is that answer, not a goal (autotom._Grounding.propose,
wording.restates): it is fed back once, dropped, and never reaches a likelihood request."""

from __future__ import annotations

import json
import re
from typing import Any

from thoughttrace.llm import get_model
from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood
from thoughttrace.tom.wording import claim, restates

from .scripted import CHOICES, STORY

QUESTION = "Where will Sally look for the ball?"
RESTATING = ["Sally will look for the ball in the basket because she left it there.",
             "Sally will look for the ball in the box."]
GOALS = ["Sally wants to play with the ball.", "Sally wants to tidy the kitchen."]


def test_restates() -> None:
    assert restates(RESTATING[0], "Where will Sally look for the ball: basket")
    assert restates("Sally looks for the balls in the basket", "Where will Sally look for the ball: basket")
    assert not restates(GOALS[0], "Where will Sally look for the ball: basket")
    assert not restates("Sally thinks the ball is in the basket.", "Where will Sally look for the ball: basket")
    assert not restates("Sally left.", "Sally")  # a one-word statement restates nothing


BELIEFS = ["Sally thinks the ball is in the basket.", "Sally thinks the ball is in the box."]


def _model(first: list[str], second: list[str], beliefs: list[str] = BELIEFS):
    def respond(messages: Any, cfg: Any) -> str:
        head = messages[0]["content"] if isinstance(messages[0], dict) else messages[0].content
        if "Analyse the question" in head:
            return json.dumps({"agents": ["Sally"], "variable": "action", "known": [], "statements": [],
                               "least_likely": False, "model": ["State", "Observation", "Belief", "Action"]})
        if re.search(r"Consider (\w+)\.", head):
            return json.dumps({"observed": [1, 2, 3, 4], "actions": [1, 4]})
        if "Sally's goal" in head:
            return json.dumps({"hypotheses": first if len(messages) == 1 else second})
        if "Sally's belief" in head:
            return json.dumps({"hypotheses": beliefs})
        return "{}"

    return get_model("scripted", cache=False, fn=respond)


async def _solve(first: list[str], second: list[str], beliefs: list[str] = BELIEFS
                 ) -> tuple[dict[str, Any], list[LikelihoodRequest]]:
    calls: list[LikelihoodRequest] = []

    def lik(req: LikelihoodRequest) -> float:
        calls.append(req)
        return 0.5  # uninformative: the discovery tries every variable, Goal included

    ans = await AutoToM(AutoToMConfig(), likelihood=ScriptedLikelihood(lik)).solve(
        _model(first, second, beliefs), STORY, QUESTION, CHOICES)
    assert ans.error is None
    return ans.trace, calls


def _goal_values(calls: list[LikelihoodRequest]) -> set[str]:
    return {v for r in calls for label, v in r.facts if label == "What Sally wants"}


async def test_restating_goals_are_fed_back_and_replaced() -> None:
    trace, calls = await _solve(RESTATING, GOALS)
    assert trace["hypotheses"]["Goal"] == GOALS
    attempts = trace["hypothesis_steps"]["Goal"]["attempts"]
    assert len(attempts) == 2 and "not an answer" in attempts[0]["error"]
    assert _goal_values(calls) == set(GOALS)


async def test_goals_that_keep_restating_leave_the_goal_out() -> None:
    trace, calls = await _solve(RESTATING, RESTATING)
    assert not trace["hypotheses"].get("Goal")
    assert not _goal_values(calls)


async def test_one_restating_goal_is_dropped() -> None:
    trace, calls = await _solve([RESTATING[0], *GOALS], GOALS)
    assert trace["hypotheses"]["Goal"] == GOALS
    assert trace["hypothesis_steps"]["Goal"]["restating_dropped"] == [claim(RESTATING[0])]
    assert _goal_values(calls) == set(GOALS)


def test_a_claim_keeps_what_is_claimed_and_drops_its_reason() -> None:
    assert claim("Abigail believes the beans are in the suitcase because Owen moved the beans to the suitcase.") \
        == "Abigail believes the beans are in the suitcase."
    assert claim("Sally wants the ball, because she is bored") == "Sally wants the ball."
    assert claim("Sally thinks the ball is in the box.") == "Sally thinks the ball is in the box."
    assert claim("Because Anne moved it.") == ""


async def test_a_belief_hypothesis_reaches_the_likelihoods_without_its_reason() -> None:
    """The 1.5B model gave ToMi beliefs reasons from the whole story ("... because Anne moved the ball to the
    box"), a move the agent never saw: cut, it never reaches one of the agent's likelihood prompts."""
    reasons = ["Sally thinks the ball is in the basket because she put it there.",
               "Sally thinks the ball is in the box because Anne moved the ball to the box."]
    trace, calls = await _solve(GOALS, GOALS, reasons)
    assert trace["hypotheses"]["Belief"] == BELIEFS
    assert trace["hypothesis_steps"]["Belief"]["reasons_cut"] == 2
    assert calls and not any("moved the ball" in f"{r.value} {r.facts}" for r in calls)


async def test_reasons_that_tell_the_hypotheses_apart_are_kept() -> None:
    both = ["Sally thinks the ball is in the box because Anne said so.",
            "Sally thinks the ball is in the box because she saw it there."]
    trace, _ = await _solve(GOALS, GOALS, both)
    assert trace["hypotheses"]["Belief"] == both and "reasons_cut" not in trace["hypothesis_steps"]["Belief"]
