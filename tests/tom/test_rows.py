"""Factors asked a row at a time (likelihood.ChoiceRequest, inference's `row`): one request per parent
assignment instead of one per hypothesis, rows that sum to one, letters read from the model's answer."""

from __future__ import annotations

import pytest

from thoughttrace.llm import get_model
from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.inference import infer
from thoughttrace.tom.items import letter_mass
from thoughttrace.tom.likelihood import ChoiceRequest, LLMLikelihood, ScriptedLikelihood, row_both_orders
from thoughttrace.tom.model_space import ACTION, BELIEF, GOAL, OBS, STATE, Node, ProblemModel, StepModel

from .scripted import competent_model
from .test_inference import Table, obs


def _two_steps() -> ProblemModel:
    steps = [
        StepModel(0, {STATE: obs(STATE, "s0"), OBS: obs(OBS, "o0"), BELIEF: Node(BELIEF, ["x", "y"])}),
        StepModel(1, {STATE: obs(STATE, "s1"), OBS: obs(OBS, "o1"), BELIEF: Node(BELIEF, ["x", "y"])}),
    ]
    return ProblemModel("Ann", steps, BELIEF, constant={GOAL: obs(GOAL, "g")})


async def test_a_row_is_one_request_per_parent_assignment_and_enters_the_filter_as_given() -> None:
    rows = {("o0",): [0.75, 0.25], ("x", "o1"): [0.9, 0.1], ("y", "o1"): [0.2, 0.8]}
    asked: list[tuple[str, list[str], tuple[str, ...]]] = []

    async def row(step: int, var: str, values: list[str], parents: tuple[tuple[str, str], ...]) -> list[float] | None:
        asked.append((var, values, tuple(v for _, v in parents)))
        return rows[tuple(v for _, v in parents)]

    table = Table({})  # no value is asked alone
    res = await infer(_two_steps(), table, row=row)
    assert not table.requests and len(asked) == 3 and all(v == ["x", "y"] for _, v, _ in asked)
    # prior (0.75, 0.25), then the transition rows
    assert res.posterior == pytest.approx([0.75 * 0.9 + 0.25 * 0.2, 0.75 * 0.1 + 0.25 * 0.8])
    assert res.factor_calls == 3


async def test_a_row_function_may_decline_and_the_values_are_asked_alone() -> None:
    async def row(step: int, var: str, values: list[str], parents: tuple[tuple[str, str], ...]) -> list[float] | None:
        return None

    table = Table({(BELIEF, "x", "o0"): 0.9, (BELIEF, "y", "o0"): 0.3, (BELIEF, "x", "x", "o1"): 0.9,
                   (BELIEF, "y", "x", "o1"): 0.1, (BELIEF, "x", "y", "o1"): 0.2, (BELIEF, "y", "y", "o1"): 0.8})
    res = await infer(_two_steps(), table, row=row)
    assert len(table.requests) == 6 and res.posterior == pytest.approx([0.725, 0.275])


async def test_a_row_of_the_wrong_length_is_an_error() -> None:
    async def row(step: int, var: str, values: list[str], parents: tuple[tuple[str, str], ...]) -> list[float] | None:
        return [1.0]

    with pytest.raises(ValueError, match="1 values for 2 hypotheses"):
        await infer(_two_steps(), Table({}), row=row)


def test_letter_mass_reads_the_option_letters_only() -> None:
    top = [(" A", -0.5), ("B.", -1.0), ("(B)", -2.0), ("C", -0.1), ("Likely", -0.2), ("b", -0.3), ("", -3.0)]
    mass = letter_mass(top, 2)  # C is not an option of a 2-option row, "b" is a word's start, not a letter
    assert mass == pytest.approx([0.6065, 0.3679 + 0.1353], abs=1e-4)


async def test_the_model_row_is_the_normalised_letter_mass() -> None:
    model = get_model("scripted", cache=False, logprobs={"A": 0.3, "B": 0.1, "Likely": 0.6})
    lik = LLMLikelihood(model)
    req = ChoiceRequest(agent="Ann", variable="What Ann believes", options=("in the box", "in the basket"),
                        facts=(("What Ann perceived", "the ball in the basket"),))
    assert lik.supports_choice and await lik.choose(req) == pytest.approx([0.75, 0.25])
    prompt = model.backend.requests[-1]["messages"][-1]["content"]
    assert "A. in the box\nB. in the basket" in prompt and "Answer with one letter" in prompt
    assert lik.n_requests == 1 and lik.trace[-1]["options"] == ["in the box", "in the basket"]
    # no letter among the model's top tokens: no information, the uniform row, marked so
    silent = LLMLikelihood(get_model("scripted", cache=False, logprobs={"Likely": 0.9}))
    assert await silent.choose(req) == [0.5, 0.5] and silent.trace[-1]["note"] == "uninformative"
    # a generate-only backend has no letter distribution
    assert not LLMLikelihood(model, method="verbal").supports_choice


STORY = ("1 Sally and Anne sat at the table.\n2 The ball is in the basket.\n3 Sally looked at the shelf.\n"
         "4 Anne moved the ball to the box.")
CHOICES = ["basket", "box", "shelf"]


def _place(value: str, facts: dict[str, str]) -> float:
    """0.9 for the place Sally last perceived the ball in (the last place named; else the one she believed before),
    0.3 otherwise. Her own act "Sally looked at the shelf." opens what she perceived next (rules.py
    `own_acts_observed`), before the move."""
    seen = facts.get("What Sally perceived", "")
    named = sorted((c for c in CHOICES if f"the {c}" in seen and "ball" in seen), key=lambda c: seen.rfind(f"the {c}"))
    where = named[-1] if named else next((c for c in CHOICES if c in facts.get("What Sally believed before", "")), "")
    return 0.9 if where and where in value else 0.3


async def _solve(config: AutoToMConfig, lik: ScriptedLikelihood):
    model = competent_model(perception={"Sally": {"observed": [1, 2, 3, 4], "actions": [1, 3]}},
                            statements=[f"Sally thinks the ball is in the {c}." for c in CHOICES])
    return await AutoToM(config, likelihood=lik).solve(model, STORY, "Where does Sally think the ball is?", CHOICES)


def _transitions(calls: list) -> set:
    return {r for r in calls if any(label.endswith("believed before") for label, _ in r.facts)}


async def test_a_belief_transition_costs_one_row_per_previous_belief_not_one_request_per_pair() -> None:
    def choose(req: ChoiceRequest) -> list[float]:
        ps = [_place(o, dict(req.facts)) for o in req.options]
        return [p / sum(ps) for p in ps]

    rows = ScriptedLikelihood(lambda req: _place(req.value, dict(req.facts)), choose)
    rows_on = AutoToMConfig(threshold=-0.1, row_variables=frozenset({BELIEF, ACTION}),  # the search reaches step 1
                            belief_transition="asked")
    ans = await _solve(rows_on, rows)
    transitions = _transitions(rows.calls)
    # one row per previous belief, in two orders, at the step that saw the ball moved to the box: 6 requests where
    # statements cost 9 (the step where it was seen in the basket starts the window: the one before carries no
    # evidence, see test_persistence.py)
    assert len(transitions) == 3 * 2 and all(isinstance(r, ChoiceRequest) and len(r.options) == 3 for r in transitions)
    assert ans.letter == "B"
    per_statement = ScriptedLikelihood(lambda req: _place(req.value, dict(req.facts)))
    before = await _solve(AutoToMConfig(threshold=-0.1, belief_transition="asked"), per_statement)
    assert len(_transitions(per_statement.calls)) == 3 * 3 and before.letter == "B"
    assert ans.trace["likelihood_requests"] < before.trace["likelihood_requests"]


async def test_a_sticky_transition_asks_the_observation_alone_n_requests_not_n_squared() -> None:
    """Engine v17 (factors.sticky_transition): the belief after the move is asked given what Sally perceived
    alone, 3 requests where every pair cost 9, with no previous belief in any prompt; the previous belief enters
    through the stay weight, so the answer is still the box she saw it moved to."""
    sticky = ScriptedLikelihood(lambda req: _place(req.value, dict(req.facts)))
    ans = await _solve(AutoToMConfig(threshold=-0.1), sticky)
    assert not _transitions(sticky.calls)
    moved = {r for r in sticky.calls if r.variable == "What Sally believes" and "moved" in str(r.facts)}
    assert len(moved) == 3 and ans.letter == "B"
    asked = ScriptedLikelihood(lambda req: _place(req.value, dict(req.facts)))
    before = await _solve(AutoToMConfig(threshold=-0.1, belief_transition="asked"), asked)
    # the 3 requests given the move alone were asked before too (when that step started a window); the 9 pairs are gone
    assert len(_transitions(asked.calls)) == 9 and before.letter == "B"
    assert ans.trace["likelihood_requests"] == before.trace["likelihood_requests"] - 9
    # rows too: one row given the observation alone (two orders), then the stay weight
    rows = ScriptedLikelihood(lambda req: _place(req.value, dict(req.facts)),
                              lambda req: [_place(o, dict(req.facts)) for o in req.options])
    by_row = await _solve(AutoToMConfig(threshold=-0.1, row_variables=frozenset({BELIEF, ACTION})), rows)
    assert not _transitions(rows.calls) and by_row.letter == "B"


def test_the_stay_weight_keeps_a_belief_the_observation_does_not_favour_and_lets_strong_evidence_move_it() -> None:
    from thoughttrace.tom.factors import sticky_transition

    def post(ev: dict[str, float], prev: str) -> dict[str, float]:
        w = {b: sticky_transition(e, b, prev, len(ev)) for b, e in ev.items()}
        return {b: x / sum(w.values()) for b, x in w.items()}

    assert post({"box": 0.5, "basket": 0.5}, "basket")["basket"] == pytest.approx(0.75)
    assert post({"box": 0.9, "basket": 0.1}, "basket")["box"] == pytest.approx(0.75)
    assert sticky_transition(0.4, "box", "box", 2, stay=1.0) == pytest.approx(0.4)
    assert sticky_transition(0.4, "box", "basket", 2, stay=1.0) == 0.0


@pytest.mark.parametrize("truth", [[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]])
async def test_both_orders_cancel_a_taste_for_the_first_letter(truth: list[float]) -> None:
    """A model that likes letter A 4 times more than B: asked once, its row leans to whatever is shown first;
    the two orders together give the row without the taste."""
    options = ("in the basket", "in the box")

    def biased(req: ChoiceRequest) -> list[float]:
        w = [truth[options.index(o)] * (4.0 if k == 0 else 1.0) for k, o in enumerate(req.options)]
        return [x / sum(w) for x in w]

    lik = ScriptedLikelihood(lambda req: 0.5, biased)
    req = ChoiceRequest(agent="Ann", variable="What Ann believes", options=options)
    assert (await lik.choose(req))[0] > truth[0] + 0.1  # one order: the taste shows
    assert await row_both_orders(lik, req) == pytest.approx(truth)
    assert [c.options for c in lik.calls[1:]] == [options, options[::-1]]
