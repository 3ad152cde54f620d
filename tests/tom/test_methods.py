"""Baselines behind the one interface: direct (debiased letters), cot (strict parse), simtom (perspective)."""

from __future__ import annotations

import pytest

from thoughttrace.llm import get_model
from thoughttrace.tom.items import letter_mass
from thoughttrace.tom.methods import METHODS, asolve, get_method

from .scripted import CHOICES, STORY, competent_model


def test_letter_mass_accepts_common_token_shapes() -> None:
    import math

    top = [(" A", math.log(0.4)), ("(B", math.log(0.2)), ("C.", math.log(0.1)), ("Z", math.log(0.3))]
    assert letter_mass(top, 3) == pytest.approx([0.4, 0.2, 0.1])


async def test_direct_cancels_a_pure_position_bias() -> None:
    model = get_model("scripted", cache=False, logprobs={"A": 0.7, "B": 0.3})
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method="direct")
    assert ans.posterior == pytest.approx([0.5, 0.5]) and ans.is_tie
    assert len(model.backend.requests) == 2  # both rotations of two options


async def test_direct_cancels_a_middle_position_bias_with_three_choices() -> None:
    model = get_model("scripted", cache=False, logprobs={"A": 0.2, "B": 0.6, "C": 0.2})
    ans = await asolve(model, STORY, "Where is the ball?", ["basket", "box", "bag"], method="direct")
    assert ans.posterior == pytest.approx([1 / 3] * 3) and len(model.backend.requests) == 3


async def test_direct_keeps_a_content_preference() -> None:
    def lp(messages):
        text = messages[-1].content
        basket_first = "A. basket" in text
        return {"A": 0.8, "B": 0.2} if basket_first else {"A": 0.2, "B": 0.8}

    model = get_model("scripted", cache=False, logprobs=lp)
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method="direct")
    assert ans.posterior == pytest.approx([0.8, 0.2]) and ans.letter == "A"


async def test_cot_parses_the_last_answer_line_strictly() -> None:
    model = get_model("scripted", cache=False, outputs=["Sally left before the move.\nAnswer: A"])
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method="cot")
    assert ans.posterior == [1.0, 0.0] and ans.error is None
    model = get_model("scripted", cache=False, outputs=["I think it is in the basket", "Answer: B"])
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method="cot")
    assert ans.letter == "B" and len(model.backend.requests) == 2
    model = get_model("scripted", cache=False, outputs=["hmm", "still hmm"])
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method="cot")
    assert ans.is_tie and "no 'Answer" in (ans.error or "")


async def test_simtom_answers_on_the_agents_perspective() -> None:
    model = competent_model()
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method="simtom")
    assert ans.trace["perspectives"][0]["visible"][-1] == "Sally exited the kitchen."
    answer_prompts = [r["messages"][-1]["content"] for r in model.backend.requests if r["kind"] == "next_token_logprobs"]
    assert len(answer_prompts) == 2 and not any("moved the ball" in p for p in answer_prompts)
    assert sum(ans.posterior) == pytest.approx(1.0)


async def test_every_method_returns_a_distribution_and_usage() -> None:
    for name in METHODS:
        model = competent_model()
        ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method=name)
        assert ans.method == name and sum(ans.posterior) == pytest.approx(1.0)
        assert ans.usage.calls >= 1


def test_unknown_method_and_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        get_method("magic")
    with pytest.raises(ValueError, match="takes no options"):
        get_method("direct", k_hypotheses=2)


async def test_a_failing_backend_is_recorded_not_raised() -> None:
    from thoughttrace.llm import ServerError

    def boom(messages, cfg):
        raise ServerError("down")

    model = get_model("scripted", cache=False, fn=boom, logprobs=lambda m: (_ for _ in ()).throw(ServerError("down")),
                      max_retries=0)
    ans = await asolve(model, STORY, "Where does Sally think the ball is?", CHOICES, method="direct")
    assert ans.error and "RetriesExhausted" in ans.error and ans.is_tie
