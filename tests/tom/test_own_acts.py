"""An agent's own acts feed its beliefs (issue 28; hitom-00425: Jacob moved the pepper himself, and his belief did not
move). The act opens what the agent observed at the next step, when it bears on the belief."""

from __future__ import annotations

from pathlib import Path

from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.benchmarks import load_uniform
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood
from thoughttrace.tom.rules import without

from .scripted import competent_model

CHOICES = ["blue_container", "red_treasure_chest", "blue_basket"]
QUESTION = "Where does Jacob really think the green_pepper is?"


def _story(tom_dir: Path) -> str:
    """hitom-00425's first six lines: Charlotte moves the pepper, leaves, then Jacob moves it himself and leaves."""
    item = next(it for it in load_uniform(tom_dir, "hitom") if it.id == "hitom-00425")
    lines = item.story.splitlines()[:6]
    assert lines[4] == "5 Jacob moved the green_pepper to the blue_basket."
    return "\n".join(lines)


def _witness(req: LikelihoodRequest) -> float:
    """A belief about the pepper is likely where Jacob last perceived it (else where he believed it before)."""
    if not req.variable.endswith("believes"):
        return 0.5
    facts = dict(req.facts)
    seen = facts.get("What Jacob perceived", "")
    named = sorted((c for c in CHOICES if c in seen), key=seen.rfind)
    where = named[-1] if named else next((c for c in CHOICES if c in facts.get("What Jacob believed before", "")), None)
    return 0.5 if where is None else (0.9 if where in req.value else 0.1)


async def _solve(tom_dir: Path, config: AutoToMConfig):
    perception = {"Jacob": {"observed": [1, 2, 3, 4, 5, 6], "actions": [1, 5, 6]}}
    model = competent_model(agents=["Jacob"], perception=perception,
                            statements=[f"Jacob thinks the green_pepper is in the {c}." for c in CHOICES])
    lik = ScriptedLikelihood(_witness)
    return await AutoToM(config, likelihood=lik).solve(model, _story(tom_dir), QUESTION, CHOICES), lik


async def test_jacobs_own_move_moves_his_belief(tom_dir: Path) -> None:
    ans, lik = await _solve(tom_dir, AutoToMConfig())
    assert CHOICES[ans.answer] == "blue_basket", ans.posterior
    # the step after his move observed it; the act before the move ("entered the porch") bears on nothing
    timeline_obs = [r for r in lik.calls if dict(r.facts).get("What Jacob perceived", "").startswith("Jacob moved")]
    assert timeline_obs


async def test_without_the_rule_his_belief_stays_where_charlotte_put_it(tom_dir: Path) -> None:
    ans, _ = await _solve(tom_dir, AutoToMConfig(rules=without("own_acts_observed")))
    assert CHOICES[ans.answer] == "red_treasure_chest", ans.posterior


async def test_a_story_ending_with_the_agents_own_move_asks_the_belief_after_it() -> None:
    story = "1 Ann entered the kitchen.\n2 The ball is in the basket.\n3 Ann moved the ball to the box."
    perception = {"Ann": {"observed": [1, 2, 3], "actions": [1, 3]}}
    model = competent_model(agents=["Ann"], perception=perception,
                            statements=["Ann thinks the ball is in the basket.", "Ann thinks the ball is in the box."])

    def lik(req: LikelihoodRequest) -> float:
        if not req.variable.endswith("believes"):
            return 0.5
        seen = dict(req.facts).get("What Ann perceived", "") + " " + dict(req.facts).get("What Ann believed before", "")
        where = "box" if "to the box" in seen or "in the box" in seen else "basket" if "basket" in seen else None
        return 0.5 if where is None else (0.9 if where in req.value else 0.1)

    ans = await AutoToM(AutoToMConfig(), likelihood=ScriptedLikelihood(lik)).solve(
        model, story, "Where does Ann think the ball is?", ["basket", "box"])
    assert ans.trace["own_last_act_step"] == 2 and ans.letter == "B", ans.posterior
