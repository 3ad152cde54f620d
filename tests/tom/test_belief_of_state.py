"""The belief-of-state sub-inference for higher-order questions (belief_state.py), scripted likelihoods only:
the outer agent's posterior over the world state is inferred from what it perceived, is the prior of the
inner model's latent State, reaches the inner agent's belief only through its Observation, is explicit in the
trace, and spends the one budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from thoughttrace.llm import get_model
from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.belief_state import state_hypotheses, state_of
from thoughttrace.tom.benchmarks import load_uniform
from thoughttrace.tom.items import select
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood

from .scripted import CHOICES, competent_model

STORY = ("1 Anne entered the kitchen.\n2 Sally entered the kitchen.\n3 The ball is in the basket.\n"
         "4 Sally exited the kitchen.\n5 Anne moved the ball to the box.")
PERCEPTION = {"Anne": {"observed": [1, 2, 3, 4, 5], "actions": [1, 5]},
              "Sally": {"observed": [1, 2, 3, 4], "actions": [2, 4]}}
QUESTION = "Where does Anne think that Sally thinks the ball is?"
OUTER, OBSERVED, WORLD = "What Anne believes", "What Anne believes Sally perceived", "What Anne believes is true in the world"


def _place(text: str) -> str | None:
    return "basket" if "basket" in text else ("box" if "box" in text else None)


def script(outer_says: str | None = None):
    """Anne believes what she last perceived about the ball (or `outer_says` always); Anne believes Sally saw
    a sentence about the ball when it agrees with the world as Anne believes it (0.9, else 0.1; 'no
    observation' 0.3); Sally believes what she saw (0.9) and keeps a previous belief."""
    def lik(req: LikelihoodRequest) -> float:
        facts = dict(req.facts)
        place = _place(req.value)
        if req.variable == OUTER:
            seen = facts["What Anne perceived"]
            where = outer_says or ("box" if "to the box" in seen else "basket" if "in the basket" in seen else None)
            return 0.5 if where is None else (0.9 if place == where else 0.1)
        if req.variable == OBSERVED:
            if req.value == "no observation":
                return 0.3
            return 0.7 if place is None else (0.9 if place in facts.get(WORLD, "") else 0.1)
        if req.variable == "What Sally believes":
            if "What Sally believed before" in facts:
                return 0.9 if place and place in facts["What Sally believed before"] else 0.1
            if "in the basket" in facts.get(OBSERVED, ""):
                return 0.9 if place == "basket" else 0.1
            return 0.5
        return 0.5
    return lik


async def _solve(config: AutoToMConfig, lik: ScriptedLikelihood):
    model = competent_model(agents=["Anne", "Sally"], perception=PERCEPTION)
    return await AutoToM(config, likelihood=lik).solve(model, STORY, QUESTION, CHOICES)


def test_state_hypotheses_are_the_beliefs_contents() -> None:
    agents = ["Anne", "Sally"]
    assert state_of("Sally thinks that the ball is in the basket.", agents) == "The ball is in the basket."
    assert state_of("Anne thinks that Sally thinks the ball is in the box.", agents) == "The ball is in the box."
    assert state_of("Sally believes this is so: the key is lost.", agents) == "The key is lost."
    assert state_of("basket", agents) == "basket"
    # the parse's fallback statement for a short choice
    assert state_of("Where does Anne think that Sally thinks the ball is: basket", agents) == "Where the ball is: basket"
    assert state_of("Where will Sally look for the ball: box", agents) == "Where will Sally look for the ball: box"
    assert state_of("Bob thinks it rains.", agents) == "Bob thinks it rains."  # not an agent of the question
    assert state_hypotheses(["Sally thinks the ball is in the box.", "Anne thinks the ball is in the box",
                             "Sally thinks the ball is in the basket."], agents) == [
        "The ball is in the box.", "The ball is in the basket."]


async def test_the_answer_marginalises_the_outer_agents_belief_of_the_state() -> None:
    """Hand-computed: at Sally's step 1, Anne believes basket with 0.9 (what she perceived up to then), so
    P(Sally thinks basket) ∝ Σ_s P_Anne(s) Σ_o P(o | s) P(b | o) = 0.9(0.9·0.9 + 0.3·0.5) + 0.1(0.1·0.9 + 0.3·0.5)
    = 0.888 against 0.232 for the box; step 2 (nothing new) keeps it by persistence."""
    lik = ScriptedLikelihood(script())
    ans = await _solve(AutoToMConfig(), lik)
    assert ans.posterior == pytest.approx([0.888 / 1.12, 0.232 / 1.12])
    bos = ans.trace["belief_of_state"]
    assert bos["outer"] == "Anne" and bos["inner"] == "Sally"
    assert bos["state_hypotheses"] == ["The ball is in the basket.", "The ball is in the box."]
    (step,) = bos["outer_posterior"]
    assert step["step"] == 1 and step["posterior"]["The ball is in the basket."] == pytest.approx(0.9)
    assert "moved the ball" not in step["perceived"]  # the outer belief of step 1 sees only the story up to it
    assert bos["inner_belief"] == dict(zip(["Sally thinks the ball is in the basket.",
                                            "Sally thinks the ball is in the box."], ans.posterior))
    assert bos["state_given_evidence"][0]["step"] == 1
    # the world state reaches Sally's belief only through her Observation: never a fact of a belief request
    for r in lik.calls:
        if r.variable == "What Sally believes":
            assert WORLD not in dict(r.facts)
        if r.variable == OBSERVED:  # "no observation" is asked once, not once per world state
            assert (WORLD in dict(r.facts)) == (r.value != "no observation"), r
            assert r.context.startswith("What Anne perceived of the story so far:")


async def test_the_outer_posterior_is_the_prior_of_the_state() -> None:
    """If Anne believed the ball was in the box all along, the sentence 'The ball is in the basket' is one she
    would not expect Sally to have perceived: P(Sally thinks basket) falls from 0.793 to 0.65 (by hand:
    0.312 / 0.48). The discovery stops at the step-1 model in both cases (-H(0.65) = -0.647 >= -0.673)."""
    basket = await _solve(AutoToMConfig(), ScriptedLikelihood(script()))
    box = await _solve(AutoToMConfig(), ScriptedLikelihood(script(outer_says="box")))
    assert box.trace["belief_of_state"]["outer_posterior"][0]["posterior"]["The ball is in the box."] == pytest.approx(0.9)
    assert box.posterior[0] == pytest.approx(0.312 / 0.48)
    assert basket.posterior[0] - box.posterior[0] > 0.1


async def test_off_the_state_is_the_re_told_story() -> None:
    lik = ScriptedLikelihood(script())
    ans = await _solve(AutoToMConfig(belief_of_state=False), lik)
    assert "belief_of_state" not in ans.trace
    assert not any(r.variable in (OUTER, OBSERVED) for r in lik.calls)


@pytest.mark.parametrize("budget", [3, 6, 40])
async def test_the_outer_requests_spend_the_one_budget(budget: int) -> None:
    lik = ScriptedLikelihood(script())
    ans = await _solve(AutoToMConfig(likelihood_budget=budget), lik)
    distinct = set(lik.calls)
    assert len(distinct) <= budget and ans.trace["likelihood_requests"] == len(distinct)
    if budget == 40:
        assert any(r.variable == OUTER for r in distinct) and ans.trace["discovery"]["stopped_because"] == "threshold"


async def test_higher_order_dev_items_run_within_the_budget(tom_dir: Path) -> None:
    """Every nested dev item (ToMi second order, Hi-ToM orders 2-4) with an unusable model (all fallbacks)."""
    items = [it for bench in ("tomi", "hitom") for it in select(load_uniform(tom_dir, bench), split="dev", limit=6)
             if it.question_type.startswith(("second_order", "order2", "order3", "order4"))]
    assert len(items) >= 5
    for it in items:
        sent: list[LikelihoodRequest] = []

        def lik(req: LikelihoodRequest, sent: list[LikelihoodRequest] = sent) -> float:
            sent.append(req)
            return 0.2 + 0.6 * (len(req.value) % 7) / 7

        model = get_model("scripted", cache=False, outputs=["nonsense"], logprobs={"Likely": 0.5, "Unlikely": 0.5})
        ans = await AutoToM(AutoToMConfig(llm_steps=False, likelihood_budget=12),
                            likelihood=ScriptedLikelihood(lik)).solve(model, it.story, it.question, it.choices)
        assert ans.error is None, it.id
        assert len(set(sent)) <= 12 and ans.trace["likelihood_requests"] == len(set(sent)), it.id
        assert "belief_of_state" in ans.trace, it.id


async def test_explain_shows_both_levels() -> None:
    ans = await _solve(AutoToMConfig(), ScriptedLikelihood(script()))
    text = ans.explain()
    assert "belief of state (Anne about Sally):" in text
    assert "step 1: what Anne believes is true: The ball is in the basket.=0.90" in text
    assert "what Anne believes Sally believes: Sally thinks the ball is in the basket.=0.79" in text


async def test_an_observation_that_cannot_move_the_belief_is_not_inferred() -> None:
    """"A dog barked." names nothing of Sally's beliefs about the ball: whether Anne thinks Sally perceived it is not
    asked (nor Anne's belief of the state there), since either way Sally's belief would not move; the ball's step is."""
    story = ("1 Anne entered the kitchen.\n2 Sally entered the kitchen.\n3 The ball is in the basket.\n"
             "4 Sally looked at the window.\n5 A dog barked.\n6 Sally exited the kitchen.\n7 Anne moved the ball to the box.")
    perception = {"Anne": {"observed": [1, 2, 3, 4, 5, 6, 7], "actions": [1, 7]},
                  "Sally": {"observed": [1, 2, 3, 4, 5, 6], "actions": [2, 4, 6]}}
    lik = ScriptedLikelihood(script())
    ans = await AutoToM(AutoToMConfig(), likelihood=lik).solve(
        competent_model(agents=["Anne", "Sally"], perception=perception), story, QUESTION, CHOICES)
    assert ans.error is None
    observed = [r for r in lik.calls if isinstance(r, LikelihoodRequest) and r.variable == OBSERVED]
    assert observed and not [r for r in observed if "dog" in r.value]
    assert [r for r in observed if "basket" in r.value]
    assert ans.letter == "A"
