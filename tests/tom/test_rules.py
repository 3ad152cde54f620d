"""Every deterministic text rule of the engine (rules.py) has a switch and one test here: on, it fires on a small
story; off, it does not. A rule added to rules.RULES without a test here fails `test_every_rule_has_a_test`."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from thoughttrace.llm import get_model
from thoughttrace.tom.analysis import analyse_question
from thoughttrace.tom.autotom import AutoToM, AutoToMConfig, _Grounding
from thoughttrace.tom.factors import ACT_UNRELATED, NO_EVIDENCE, UNRELATED, fixed_reason, unrelated
from thoughttrace.tom.likelihood import ScriptedLikelihood
from thoughttrace.tom.model_space import ACTION, BELIEF, OBS, PREV_BELIEF, STATE
from thoughttrace.tom.oracle import OracleLikelihood
from thoughttrace.tom.rules import DEFAULT_RULES, LEGACY_RULES, RULES, check, describe, with_rules, without
from thoughttrace.tom.timeline import NOTHING_NEW, Step, perceive
from thoughttrace.tom.usage import track

from .test_goal_hypotheses import BELIEFS, GOALS, RESTATING, _model

OFF = {name: without(name) if RULES[name].default else DEFAULT_RULES for name in RULES}
ON = {name: DEFAULT_RULES if RULES[name].default else with_rules(name) for name in RULES}
HYPS = ("Ann thinks the ball is in the basket.", "Ann thinks the ball is in the box.")


async def _perceive(sentences: list[str], agent: str, llm: dict[str, list[int]], rules: frozenset[str]):  # type: ignore[no-untyped-def]
    model = track(get_model("scripted", cache=False, outputs=[json.dumps(llm)] * 3))
    return await perceive(model, sentences, agent, rules=rules)


def test_every_rule_has_a_test() -> None:
    tests = {name[len("test_rule_"):] for name in dir(sys.modules[__name__]) if name.startswith("test_rule_")}
    assert tests == set(RULES)
    assert "choice_filter" not in DEFAULT_RULES and "choice_filter" in LEGACY_RULES
    with pytest.raises(ValueError, match="unknown rule.*known rules: least_likely"):
        check({"no_such_rule"})
    assert describe().count("\n") == len(RULES) + 1


async def test_rule_least_likely() -> None:
    q = "Which of the following statements is LEAST likely true?"
    for rules, want in ((ON["least_likely"], True), (OFF["least_likely"], False)):
        a, _ = await analyse_question(None, "Ann is here.", q, ["Ann is happy.", "Ann is sad."], use_llm=False,
                                      rules=rules)
        assert a.least_likely is want


async def test_rule_subject_action() -> None:
    sentences = ["Ann entered the kitchen.", "Ann moved the ball to the box."]
    llm = {"observed": [1, 2], "actions": []}  # the model lists no act
    assert (await _perceive(sentences, "Ann", llm, ON["subject_action"])).actions == [0, 1]
    assert (await _perceive(sentences, "Ann", llm, OFF["subject_action"])).actions == []


async def test_rule_act_names_agent() -> None:
    sentences = ["Ann entered the kitchen.", "Bob left the kitchen."]
    llm = {"observed": [1, 2], "actions": [1, 2]}  # the model gives Bob's act to Ann
    assert (await _perceive(sentences, "Ann", llm, ON["act_names_agent"])).actions == [0]
    assert (await _perceive(sentences, "Ann", llm, OFF["act_names_agent"])).actions == [0, 1]


async def test_rule_perception_verbs() -> None:
    sentences = ["The cook swapped the salt.", "Ann notices the swap of the salt."]
    llm = {"observed": [1, 2], "actions": [2]}
    assert (await _perceive(sentences, "Ann", llm, ON["perception_verbs"])).actions == []
    assert (await _perceive(sentences, "Ann", llm, OFF["perception_verbs"])).actions == [1]


async def test_rule_noticed_events() -> None:
    sentences = ["The cook swapped the salt.", "Ann does not notice the swap of the salt."]
    llm = {"observed": [1, 2], "actions": []}  # the model says she saw the swap
    assert 0 not in (await _perceive(sentences, "Ann", llm, ON["noticed_events"])).observed  # type: ignore[operator]
    assert 0 in (await _perceive(sentences, "Ann", llm, OFF["noticed_events"])).observed  # type: ignore[operator]


async def test_rule_co_location() -> None:
    sentences = ["Ann entered the den.", "Bob entered the den.", "Ann exited the den.", "Bob moved the ball to the box."]
    llm = {"observed": [1, 2, 3, 4], "actions": [1, 3]}  # the model lets Ann see a move after she left
    assert 3 not in (await _perceive(sentences, "Ann", llm, ON["co_location"])).observed  # type: ignore[operator]
    assert 3 in (await _perceive(sentences, "Ann", llm, OFF["co_location"])).observed  # type: ignore[operator]


async def test_rule_private_audience() -> None:
    sentences = ["Ann, Bob and Cal sat down.", "Bob privately told Cal that the ball is in the box."]
    llm = {"observed": [1, 2], "actions": []}
    assert (await _perceive(sentences, "Ann", llm, ON["private_audience"])).observed == [0]
    assert (await _perceive(sentences, "Ann", llm, OFF["private_audience"])).observed == [0, 1]


async def test_rule_dialogue_presence() -> None:
    lines = ["Ann: the ball is in the box.", "Bob: ok.", "Bob leaves.", "Ann: I moved it to the basket."]
    assert (await perceive(None, lines, "Bob", use_llm=False, rules=ON["dialogue_presence"])).observed == [0, 1, 2]
    assert (await perceive(None, lines, "Bob", use_llm=False, rules=OFF["dialogue_presence"])).observed is None


async def _oracle(story: str, question: str, choices: list[str], gold: int, rules: frozenset[str]):  # type: ignore[no-untyped-def]
    return await AutoToM(AutoToMConfig(llm_steps=False, rules=rules),
                         likelihood=OracleLikelihood(choices, gold)).solve(None, story, question, choices)


async def test_rule_own_acts_observed() -> None:
    story = "1 Ann entered the den.\n2 The ball is in the basket.\n3 Ann moved the ball to the box."
    perception = {"observed": [1, 2, 3], "actions": [1, 3]}

    def model():  # type: ignore[no-untyped-def]
        return get_model("scripted", cache=False, outputs=[json.dumps(perception)] * 4)

    for rules, want in ((ON["own_acts_observed"], True), (OFF["own_acts_observed"], False)):
        ans = await AutoToM(AutoToMConfig(llm_steps=True, rules=rules), likelihood=ScriptedLikelihood(lambda r: 0.5)
                            ).solve(model(), story, "Where does Ann think the ball is?", ["basket", "box"])
        assert ("own_last_act_step" in ans.trace) is want


async def test_rule_choice_filter() -> None:
    story = "1 Ann entered the den.\n2 The ball is in the basket.\n3 The box is in the den."
    q, choices = "Where does Ann think the ball is?", ["basket", "box", "tin"]
    assert (await _oracle(story, q, choices, 0, ON["choice_filter"])).trace["choices_filtered"] == ["tin"]
    assert (await _oracle(story, q, choices, 0, OFF["choice_filter"])).trace["choices_filtered"] == []


async def test_rule_absent_choices_grouped() -> None:
    story = "1 Ann entered the den.\n2 The ball is in the basket."
    q, choices = "Where does Ann think the ball is?", ["basket", "box", "tin"]
    assert (await _oracle(story, q, choices, 0, ON["absent_choices_grouped"])).trace["choices_grouped"] == [["box", "tin"]]
    assert "choices_grouped" not in (await _oracle(story, q, choices, 0, OFF["absent_choices_grouped"])).trace


def test_rule_unrelated_observation() -> None:
    parents = ((PREV_BELIEF, HYPS[0]), (OBS, "A dog barked."))
    assert fixed_reason(BELIEF, parents, HYPS, rules=ON["unrelated_observation"]) == UNRELATED
    assert fixed_reason(BELIEF, parents, HYPS, rules=OFF["unrelated_observation"]) is None


def test_rule_first_step_no_evidence() -> None:
    parents = ((OBS, NOTHING_NEW),)
    assert fixed_reason(BELIEF, parents, HYPS, rules=ON["first_step_no_evidence"]) == NO_EVIDENCE
    assert fixed_reason(BELIEF, parents, HYPS, rules=OFF["first_step_no_evidence"]) is None


def test_rule_act_unrelated() -> None:
    kw: dict[str, Any] = {"value": "Ann exited the porch.", "act_observed": True, "names": "Ann"}
    assert fixed_reason(ACTION, ((BELIEF, HYPS[0]),), HYPS, rules=ON["act_unrelated"], **kw) == ACT_UNRELATED
    assert fixed_reason(ACTION, ((BELIEF, HYPS[0]),), HYPS, rules=OFF["act_unrelated"], **kw) is None


def test_rule_other_placements() -> None:
    text = "The apple is in the box."  # places another object in one of the ball's containers
    assert unrelated(text, HYPS, rules=ON["other_placements"])
    assert not unrelated(text, HYPS, rules=OFF["other_placements"])


async def _hypotheses(rules: frozenset[str], goals: list[str], beliefs: list[str]) -> dict[str, Any]:
    from .scripted import CHOICES, STORY

    ans = await AutoToM(AutoToMConfig(rules=rules), likelihood=ScriptedLikelihood(lambda r: 0.5)).solve(
        _model(goals, goals, beliefs), STORY, "Where will Sally look for the ball?", CHOICES)
    return ans.trace


async def test_rule_reasons_cut() -> None:
    reasons = [b.rstrip(".") + " because Anne said so." for b in BELIEFS[:1]] + \
        [BELIEFS[1].rstrip(".") + " because Anne moved the ball to the box."]
    assert (await _hypotheses(ON["reasons_cut"], GOALS, reasons))["hypotheses"]["Belief"] == BELIEFS
    assert (await _hypotheses(OFF["reasons_cut"], GOALS, reasons))["hypotheses"]["Belief"] == reasons


async def test_rule_restating_goals() -> None:
    goals = [RESTATING[1], *GOALS]
    assert (await _hypotheses(ON["restating_goals"], goals, BELIEFS))["hypotheses"]["Goal"] == GOALS
    assert (await _hypotheses(OFF["restating_goals"], goals, BELIEFS))["hypotheses"]["Goal"] == goals[:2]  # K per choice


async def _grounding(rules: frozenset[str], agents: str = "Ann") -> _Grounding:
    story = "1 Ann and Bob entered the den.\n2 The ball is in the basket."
    question = "Where does Ann think the ball is?" if agents == "Ann" else "Where does Bob think Ann thinks the ball is?"
    analysis, _ = await analyse_question(None, story, question, ["basket", "box"], use_llm=False, rules=rules)
    steps = [Step(0, ["x"], "s", NOTHING_NEW), Step(1, ["y"], "s", "The ball is in the basket.")]
    g = _Grounding(analysis, steps, story, question, ["basket", "box"], None, AutoToMConfig(rules=rules),
                   likelihood=ScriptedLikelihood(lambda r: 0.5))
    g.belief_values = HYPS
    return g


async def test_rule_no_evidence_window() -> None:
    variables = frozenset({STATE, OBS, BELIEF})
    on, off = await _grounding(ON["no_evidence_window"]), await _grounding(OFF["no_evidence_window"])
    assert on.no_evidence_at(on.steps[0], variables) and not off.no_evidence_at(off.steps[0], variables)


async def test_rule_unmoving_perception() -> None:
    on = await _grounding(ON["unmoving_perception"], agents="Bob > Ann")
    off = await _grounding(OFF["unmoving_perception"], agents="Bob > Ann")
    assert on.nested and not on.asks_perception("A dog barked.") and off.asks_perception("A dog barked.")


def test_whoever_first_appears_leaving_a_room_was_in_it() -> None:
    """A story re-told from Emily's perspective lost Abigail's entry; her exit still places her in the den, so she saw
    the ball there (9 ToMi second-order dev items were lost under a perfect likelihood before)."""
    from thoughttrace.tom.timeline import co_location

    sentences = ["Emily entered the den.", "The ball is in the box.", "The box is in the den.", "Abigail exited the den.",
                 "Emily moved the ball to the basket."]
    assert co_location(sentences, "Abigail") == {0: True, 1: True, 2: True, 3: True, 4: False}


async def test_a_group_of_short_choices_is_asked_as_the_questions_answer_like_its_members() -> None:
    """The grouped hypothesis shares the question's words with its siblings ("Where does Mia think the pepper is:
    one of: ..."), so an observation naming only the agent does not tell it apart from them (hitom-00445 asked such
    a step and spent its budget there before reaching the evidence)."""
    from thoughttrace.tom.analysis import fallback_statements
    from thoughttrace.tom.wording import group_text

    q = "Where does Mia think the green_pepper is?"
    statements = fallback_statements(q, ["blue_basket", group_text(["red_box", "green_tin"])])
    assert statements[1] == "Where does Mia think the green_pepper is: one of: red_box, green_tin"
    assert unrelated("Mia made no movements and stayed in the porch.", statements)


async def test_a_goal_naming_one_member_of_a_group_restates_a_choice() -> None:
    story = "1 Ann entered the den.\n2 The ball is in the basket."
    question, choices = "Where does Ann think the ball is?", ["basket", "one of: box, tin"]
    analysis, _ = await analyse_question(None, story, question, choices, use_llm=False)
    g = _Grounding(analysis, [Step(0, ["x"], "s", NOTHING_NEW)], story, question, choices, None, AutoToMConfig(),
                   likelihood=ScriptedLikelihood(lambda r: 0.5))
    assert g.restates_a_choice("Ann thinks the ball is in the tin.")
    assert not g.restates_a_choice("Ann wants to play with the ball.")
