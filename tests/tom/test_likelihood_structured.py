"""Calibrated likelihoods (three paths) and the structured-step retry/fallback."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from thoughttrace.llm import ParseError, get_model
from thoughttrace.tom.likelihood import LikelihoodRequest, LLMLikelihood, classify_mass, parse_probability
from thoughttrace.tom.structured import extract_json, parse_as, structured_step
from thoughttrace.tom.usage import TrackedModel

REQ = LikelihoodRequest(agent="Ann", variable="Belief", value="Ann thinks the ball is in the box",
                        facts=(("What Ann perceived", "Ann saw the ball go into the box"),), context="STORY")


def test_classify_mass_counts_token_prefixes() -> None:
    top = [(" Likely", math.log(0.3)), ("Un", math.log(0.2)), ("L", math.log(0.1)), ("The", math.log(0.4))]
    p_yes, p_no = classify_mass(top)
    assert p_yes == pytest.approx(0.4) and p_no == pytest.approx(0.2)


async def test_logprob_likelihood_is_calibrated_and_memoised() -> None:
    model = get_model("scripted", cache=False, logprobs={"Likely": 0.3, "Unlikely": 0.1, "Maybe": 0.6})
    lik = LLMLikelihood(model)
    assert lik.method == "logprobs"
    assert await lik(REQ) == pytest.approx(0.75)
    assert await lik(REQ) == pytest.approx(0.75)
    assert len(model.backend.requests) == 1  # memoised within the question
    prompt = model.backend.requests[0]["messages"][-1]["content"]
    assert prompt.startswith("STORY") and prompt.index("Ann saw") < prompt.index("Statement")


async def test_uninformative_top_k_gives_one_half() -> None:
    lik = LLMLikelihood(get_model("scripted", cache=False, logprobs={"The": 0.9}))
    assert await lik(REQ) == 0.5
    assert lik.trace[0]["note"] == "uninformative"


async def test_score_path_normalises_the_two_continuations() -> None:
    model = get_model("scripted", cache=False, score_fn=lambda p, c: math.log(0.6) if c == " Likely" else math.log(0.2))
    lik = LLMLikelihood(model, method="score")
    assert await lik(REQ) == pytest.approx(0.75)


async def test_verbal_fallback_parses_strictly_and_retries_once() -> None:
    model = get_model("scripted", cache=False, outputs=["probably high", "0.8"])
    lik = LLMLikelihood(model, method="verbal")
    assert await lik(REQ) == pytest.approx(0.8)
    assert "Invalid" in model.backend.requests[1]["messages"][-1]["content"]
    lik2 = LLMLikelihood(get_model("scripted", cache=False, outputs=["lots", "many"]), method="verbal")
    assert await lik2(REQ) == 0.5 and lik2.trace[0]["note"] == "verbal-unparsed"


@given(st.floats(min_value=0, max_value=1))
def test_parse_probability_accepts_bare_numbers(x: float) -> None:
    text = f"{x:.4f}"
    if text.startswith("1") and float(text) != 1.0:
        return
    assert parse_probability(text) == pytest.approx(float(text))


@given(st.text())
def test_parse_probability_never_guesses(text: str) -> None:
    try:
        value = parse_probability(text)
    except ValueError:
        return
    assert 0.0 <= value <= 1.0


class Pair(BaseModel):
    a: int
    b: str


def test_extract_json_from_prose_and_fences() -> None:
    assert extract_json('Sure! ```json\n{"a": 1, "b": "}"}\n``` done') == {"a": 1, "b": "}"}
    with pytest.raises(ParseError) as err:
        extract_json("no json here")
    assert err.value.raw == "no json here"
    with pytest.raises(ParseError, match="field 'a'"):
        parse_as('{"a": "x", "b": "y"}', Pair)


async def test_structured_step_retries_with_the_error_then_succeeds() -> None:
    model = get_model("scripted", cache=False, outputs=['{"a": "nope"}', '{"a": 2, "b": "ok"}'])
    value, trace = await structured_step(TrackedModel(model), [{"role": "user", "content": "go"}], Pair)
    assert value == Pair(a=2, b="ok") and trace["ok"]
    retry = model.backend.requests[1]["messages"]
    assert retry[-2]["content"] == '{"a": "nope"}' and "field 'a'" in retry[-1]["content"]


async def test_structured_step_falls_back_after_two_failures() -> None:
    model = get_model("scripted", cache=False, outputs=["garbage", '{"a": 1, "b": "x"}'])

    def check(p: Pair) -> None:
        raise ValueError("semantically wrong")

    value, trace = await structured_step(TrackedModel(model), [{"role": "user", "content": "go"}], Pair, check=check)
    assert value is None and trace["fallback"] and len(trace["attempts"]) == 2
