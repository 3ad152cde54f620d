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
                                          "asks a follow-up question", mode="statements")
    assert isinstance(out, HypothesisPosterior) and out.mode == "statements" and out.note is None
    assert sum(out.posterior) == pytest.approx(1.0)
    # calibrated: 0.6/0.8 = 0.75 vs 0.1/0.4 = 0.25
    assert out.posterior == pytest.approx([0.75, 0.25])
    assert out.calls == 2
    prompts = [r["messages"][-1]["content"] for r in model.backend.requests]
    assert all(p.startswith("The user asked about stars.") for p in prompts)  # shared context first


async def test_rejects_bad_prior() -> None:
    with pytest.raises(ValueError, match="prior"):
        await posterior_over_hypotheses(None, "c", ["a"], "e", prior=[1, 2], likelihood=ScriptedLikelihood(lambda r: 1))


# ------------------------------------------------------------------ rows: one distribution over the hypotheses


def _row_model(mass: dict[str, float], requests: list[str]) -> object:
    """A scripted model whose letter distribution follows the OPTION TEXT (mass[text]), plus a taste for "A"."""

    def lp(messages):  # type: ignore[no-untyped-def]
        text = messages[-1]["content"] if isinstance(messages[-1], dict) else messages[-1].content
        requests.append(text)
        options = [ln for ln in text.splitlines() if ln[:1].isupper() and ln[1:3] == ". "]
        return {ln[0]: mass[ln[3:]] * (3.0 if ln[0] == "A" else 1.0) for ln in options}

    return get_model("scripted", cache=False, logprobs=lp)


async def test_row_mode_is_the_default_asks_both_orders_and_cancels_a_letter_taste() -> None:
    hyps = ["curious", "angry", "bored"]
    mass = {"curious": 0.6, "angry": 0.1, "bored": 0.1}
    seen: list[str] = []
    out = await posterior_over_hypotheses(_row_model(mass, seen), "The user asked about stars.", hyps,
                                          "asks a follow-up question")
    assert out.mode == "row" and out.calls == 2 and len(seen) == 2  # one row, two orders, whatever n is
    assert all(p.startswith("The user asked about stars.") for p in seen)  # shared context first
    order = [[ln[3:] for ln in p.splitlines() if ln[1:3] == ". "] for p in seen]
    assert order[0] == hyps and order[1] == hyps[::-1]
    # geometric mean of (A-tasted) forward and backward rows: the taste for "A" multiplies curious once and
    # bored once, so it cancels between them and the ratio curious:angry:bored is 0.6*sqrt3 : 0.1 : 0.1*sqrt3
    w = [0.6 * math.sqrt(3), 0.1, 0.1 * math.sqrt(3)]
    assert out.posterior == pytest.approx([x / sum(w) for x in w], rel=1e-3)
    assert out.best == 0 and out.posterior[0] > 0.7


async def test_row_separates_where_independent_statements_do_not() -> None:
    """The same preference (the model likes "curious" a bit more) as statements and as a row: statements score
    each hypothesis alone (0.55 vs 0.45 Likely), so the posterior stays near uniform; in the row the options
    compete for one answer's mass."""
    hyps = ["curious", "angry", "bored", "testing", "lost"]

    def lp(messages):  # type: ignore[no-untyped-def]
        text = messages[-1]["content"] if isinstance(messages[-1], dict) else messages[-1].content
        options = [ln for ln in text.splitlines() if ln[:1].isupper() and ln[1:3] == ". "]
        if options:
            return {ln[0]: (0.7 if ln.endswith("curious") else 0.05) for ln in options}
        return {"Likely": 0.55, "Unlikely": 0.45} if "curious" in text else {"Likely": 0.45, "Unlikely": 0.55}

    model = get_model("scripted", cache=False, logprobs=lp)
    rows = await posterior_over_hypotheses(model, "ctx", hyps, "e")
    stmts = await posterior_over_hypotheses(model, "ctx", hyps, "e", mode="statements")
    assert rows.mode == "row" and stmts.mode == "statements" and stmts.calls == 5 and rows.calls == 2
    assert max(stmts.posterior) < 0.25 and rows.posterior[0] > 0.7 and rows.best == stmts.best == 0


async def test_row_mode_falls_back_to_statements_and_says_so() -> None:
    lik = ScriptedLikelihood(lambda r: 0.8 if r.facts[0][1] == "a" else 0.2)  # no `choose`: gives no rows
    out = await posterior_over_hypotheses(None, "ctx", ["a", "b"], "e", likelihood=lik)
    assert out.mode == "statements" and out.note and "per statement" in out.note
    assert out.posterior == pytest.approx([0.8, 0.2])
    rows = ScriptedLikelihood(lambda r: 0.5, choose=lambda req: [0.9 if o == "b" else 0.1 for o in req.options])
    out2 = await posterior_over_hypotheses(None, "ctx", ["a", "b"], "e", likelihood=rows, prior=[3, 1])
    assert out2.mode == "row" and len(rows.calls) == 2
    assert out2.posterior == pytest.approx([0.1 * 3 / (0.1 * 3 + 0.9), 0.9 / (0.1 * 3 + 0.9)])  # the prior multiplies
    with pytest.raises(ValueError, match="unknown mode"):
        await posterior_over_hypotheses(None, "ctx", ["a", "b"], "e", likelihood=lik, mode="rows")  # type: ignore[arg-type]
