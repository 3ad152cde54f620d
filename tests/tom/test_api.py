"""The public API used by the evals part: posterior over hypotheses with a calibrated likelihood."""

from __future__ import annotations

import math

import pytest

from thoughttrace.llm import get_model
from thoughttrace.tom.api import HypothesisPosterior, posterior_over_hypotheses
from thoughttrace.tom.likelihood import ScriptedLikelihood


async def test_posterior_is_bayes_rule_with_prior() -> None:
    table = {"wants a recipe": 0.8, "is testing the model": 0.2, "is bored": 0.2}
    lik = ScriptedLikelihood(lambda r: table[r.facts[0][1]])
    out = await posterior_over_hypotheses(None, "ctx", list(table), "asks for pasta", prior=[1, 1, 2],
                                          likelihood=lik)
    z = 0.8 * 0.25 + 0.2 * 0.25 + 0.2 * 0.5
    assert out.posterior == pytest.approx([0.2 / z, 0.05 / z, 0.1 / z])
    assert out.log_likelihoods == pytest.approx([math.log(0.8), math.log(0.2), math.log(0.2)])
    assert out.best == 0 and out.ties == [0]
    assert len(lik.calls) == 3


async def test_ties_are_reported() -> None:
    lik = ScriptedLikelihood(lambda r: 0.5)
    out = await posterior_over_hypotheses(None, "ctx", ["a", "b"], "e", likelihood=lik)
    assert out.ties == [0, 1] and out.posterior == pytest.approx([0.5, 0.5])
    assert out.best == 0  # a tie names the first tied hypothesis


async def test_a_tie_reports_the_first_tied_option() -> None:
    from thoughttrace.tom.result import Answer

    table = {"a": 0.1, "b": 0.6, "c": 0.6, "d": 0.6}
    out = await posterior_over_hypotheses(None, "ctx", list(table), "e",
                                          likelihood=ScriptedLikelihood(lambda r: table[r.facts[0][1]]))
    assert out.ties == [1, 2, 3] and out.best == 1
    ans = Answer.from_posterior("direct", ["w", "x", "y", "z"], [0.1, 0.3, 0.3, 0.3])
    assert (ans.answer, ans.letter, ans.ties, ans.is_tie) == (1, "B", [1, 2, 3], True)
    least = Answer.from_posterior("direct", ["w", "x", "y", "z"], [0.4, 0.1, 0.4, 0.1], least=True)
    assert (least.answer, least.ties) == (1, [1, 3])


async def test_with_a_model_uses_calibrated_next_token_probabilities() -> None:
    def lp(messages):  # the hypothesis "curious" makes the evidence likely
        text = messages[-1]["content"] if isinstance(messages[-1], dict) else messages[-1].content
        return {"Likely": 0.6, "Unlikely": 0.2, "Maybe": 0.2} if "curious" in text else {"Likely": 0.1, "Unl": 0.3}

    model = get_model("scripted", cache=False, logprobs=lp)
    out = await posterior_over_hypotheses(model, "The user asked about stars.", ["curious", "angry"],
                                          "asks a follow-up question")
    assert isinstance(out, HypothesisPosterior)
    assert sum(out.posterior) == pytest.approx(1.0)
    # calibrated: 0.6/0.8 = 0.75 vs 0.1/0.4 = 0.25
    assert out.posterior == pytest.approx([0.75, 0.25])
    assert out.calls == 2
    prompts = [r["messages"][-1]["content"] for r in model.backend.requests]
    assert all(p.startswith("The user asked about stars.") for p in prompts)  # shared context first


async def test_rejects_bad_prior() -> None:
    with pytest.raises(ValueError, match="prior"):
        await posterior_over_hypotheses(None, "c", ["a"], "e", prior=[1, 2], likelihood=ScriptedLikelihood(lambda r: 1))
