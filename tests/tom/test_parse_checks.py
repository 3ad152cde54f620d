"""The question parse's deterministic cross-checks: each guards one way a parse inverts or bends the answer.

Every test feeds an LLM parse that is wrong in one way (twice, so the feedback retry fails too) and checks
that the check fired, was fed back, and that the field came from its documented fallback.
"""

from __future__ import annotations

import json
from typing import Any

from thoughttrace.llm import get_model
from thoughttrace.tom.analysis import analyse_question, cross_check, heuristic_parse, names_in, story_actors
from thoughttrace.tom.methods import asolve
from thoughttrace.tom.usage import TrackedModel

from .scripted import CHOICES, STATEMENTS, STORY, competent_model

GOOD: dict[str, Any] = {"agents": ["Sally"], "variable": "belief", "known": [], "statements": STATEMENTS,
                        "least_likely": False, "model": ["State", "Observation", "Belief"]}


async def _parse(question: str, story: str = STORY, choices: list[str] = CHOICES, **wrong: Any):
    out = json.dumps({**GOOD, **wrong})
    model = get_model("scripted", cache=False, outputs=[out, out])
    analysis, trace = await analyse_question(TrackedModel(model), story, question, choices)
    return analysis, trace, model


async def test_an_invented_least_likely_flag_is_ignored() -> None:
    analysis, trace, model = await _parse("Where does Sally think the ball is?", least_likely=True)
    assert analysis.least_likely is False
    assert "least_likely" in trace["checks_fired"] and "least_likely" in trace["fallbacks"]
    # fed back once to the model
    assert "LEAST" in model.backend.requests[1]["messages"][-1]["content"]


async def test_least_likely_comes_from_the_question_even_if_the_model_misses_it() -> None:
    analysis, trace, _ = await _parse("Which is LEAST likely about where Sally thinks the ball is?")
    assert analysis.least_likely is True and "least_likely" in trace["checks_fired"]


async def test_an_invented_least_flag_cannot_flip_a_confident_answer() -> None:
    """End to end: the model's parse claims LEAST; the posterior favours A; the answer must stay A."""
    model = competent_model(least=True)
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES)
    assert ans.posterior[0] > 0.8 and not ans.least_likely and ans.letter == "A"


async def test_nested_agents_in_reversed_order_are_reordered() -> None:
    q = "Where does Anne think that Sally thinks the ball is?"
    analysis, trace, _ = await _parse(q, agents=["Sally", "Anne"])
    assert analysis.agents == ["Anne", "Sally"]
    assert "agents_order" in trace["checks_fired"]
    analysis, trace, _ = await _parse(q, agents=["Anne", "Sally"])
    assert analysis.agents == ["Anne", "Sally"] and trace["checks_fired"] == []


async def test_a_dropped_outer_agent_is_restored() -> None:
    """A parse that lists only the inner agent would answer "what Sally thinks", not "what Anne thinks Sally
    thinks" (the real 135M model did this, and the belief-of-state sub-inference never ran)."""
    q = "Where does Anne think that Sally thinks the ball is?"
    analysis, trace, model = await _parse(q, agents=["Sally"])
    assert analysis.agents == ["Anne", "Sally"]
    assert "agents_complete" in trace["checks_fired"] and "agents" in trace["fallbacks"]
    assert "what Anne thinks" in model.backend.requests[1]["messages"][-1]["content"]
    # a name in a conditional clause, or one the question does not present as thinking, is not required
    for question in ("If Anne thinks the ball is gone, where does Sally think the ball is?",
                     "Where does Sally think the ball is after Anne moved it?"):
        _, trace, _ = await _parse(question, agents=["Sally"])
        assert "agents_complete" not in trace["checks_fired"], question


async def test_invented_known_facts_are_dropped() -> None:
    analysis, trace, _ = await _parse("Where does Sally think the ball is?",
                                      known=[{"variable": "goal", "value": "Sally wants to find the ball."}])
    assert analysis.known == [] and "known_from_question" in trace["checks_fired"]


async def test_known_facts_come_from_the_conditional_clause() -> None:
    q = "If Sally has been trying to get the ball, where does Sally think the ball is?"
    analysis, trace, _ = await _parse(q, known=[{"variable": "belief", "value": "Sally saw Anne move the ball."}])
    assert [k.variable for k in analysis.known] == ["goal"] and "trying to get the ball" in analysis.known[0].value
    analysis, trace, _ = await _parse(q, known=[{"variable": "goal", "value": "Sally has been trying to get the ball"}])
    assert trace["checks_fired"] == [] and analysis.source == "llm"


async def test_an_empty_agent_list_is_refused_when_the_question_names_a_person() -> None:
    analysis, trace, _ = await _parse("Where will Sally look for the ball?", agents=[], variable="action")
    assert analysis.agents == ["Sally"] and "agents_nonempty" in trace["checks_fired"]


async def test_statements_must_carry_their_choice_not_only_a_name() -> None:
    # both statements share only the agent's name with the choices (e.g. copied from the prompt's example)
    analysis, trace, _ = await _parse("Where does Sally think the ball is?",
                                      statements=["Sally is in the kitchen.", "Sally is happy."])
    assert "statements_match" in trace["checks_fired"]
    assert analysis.statements == ["Where does Sally think the ball is: basket", "Where does Sally think the ball is: box"]


def test_cross_check_passes_a_faithful_parse() -> None:
    from thoughttrace.tom.analysis import QuestionParse

    p = QuestionParse(**GOOD)
    assert cross_check(p, STORY, "Where does Sally think the ball is?", CHOICES) == []


def test_fallback_takes_story_actors_not_capitalised_words() -> None:
    story = ('Same as always, Mia walked into the kitchen. "Hello," said Mia. Leo nodded. '
             "Hello there, Leo said. Mia put the keys in the drawer. The same drawer was old.")
    assert story_actors(story) == ["Mia", "Leo"]
    q = "Same question: Hello, where does Mia think the keys are?"
    assert names_in(q, story) == ["Mia"]
    p = heuristic_parse(story, q, ["drawer", "table"])
    assert p.agents == ["Mia"] and not p.least_likely


def test_fallback_nested_order_follows_the_question() -> None:
    p = heuristic_parse(STORY, "Where does Sally think that Anne thinks the ball is?", CHOICES)
    assert p.agents == ["Sally", "Anne"]


async def test_a_goal_variable_for_a_where_will_question_is_corrected() -> None:
    analysis, trace, _ = await _parse("Where will Sally look for the ball?", variable="goal")
    assert analysis.variable == "action" and "variable_cue" in trace["checks_fired"]
    analysis, trace, _ = await _parse("Where does Anne think that Sally searches for the ball?", variable="belief",
                                      agents=["Anne", "Sally"])
    assert analysis.variable == "action"


async def test_the_initial_model_is_the_smallest_valid_one_whatever_the_proposal() -> None:
    analysis, trace, _ = await _parse("Where does Sally think the ball is?",
                                      model=["State", "Observation", "Belief", "Action", "Goal", "Utterance"])
    assert analysis.initial_model == ["State", "Observation", "Belief"]
    assert len(trace["proposed_model"]) == 6
