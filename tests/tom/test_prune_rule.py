"""The exact-1.0 posteriors of the dev run (bigtom-00006, bigtom-00206, mmtom_qa-00001; one of them wrong):
at a step where nothing was observed both belief hypotheses scored low (P(Likely) 0.034 and 0.040), the old
absolute prune kept only the larger, so a 0.46 / 0.54 step became certainty and the persistence rule carried
the exact 0 to the answer. The prune rule is now relative to the best hypothesis (inference.prune_keep)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.inference import InferenceConfig, infer, prune_keep
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood
from thoughttrace.tom.model_space import BELIEF, OBS, Node, ProblemModel, StepModel
from thoughttrace.tom.rules import LEGACY_RULES
from thoughttrace.tom.timeline import NOTHING_NEW

from .first_order_golden import GOLDEN, run_all
from .scripted import competent_model

B1, B2 = "Kofi believes the soup contains peanut butter.", "Kofi believes the soup contains tomato paste."
LOW = {B1: 0.034000567203913507, B2: 0.03989904824646593}  # the real likelihoods of bigtom-00206


def _two_quiet_steps() -> ProblemModel:
    return ProblemModel("Kofi", [StepModel(i, {OBS: Node(OBS, [NOTHING_NEW], observed=True),
                                               BELIEF: Node(BELIEF, [B1, B2])}) for i in (2, 3)], BELIEF)


async def _factor(step: int, var: str, value: str, parents: tuple[tuple[str, str], ...]) -> float:
    given = dict(parents)
    if "PrevBelief" in given:  # the persistence rule
        return 1.0 if value == given["PrevBelief"] else 0.0
    return LOW[value]


@pytest.mark.parametrize("carry_rule", ["lazy", "eager"])
async def test_hypotheses_that_all_score_low_are_all_kept(carry_rule: str) -> None:
    """The ratio rule alone fixes it (with the eager carry, which prunes at every step), and so does the lazy
    carry alone (no pruning where there is no child to save requests on); the default has both."""
    res = await infer(_two_quiet_steps(), _factor, InferenceConfig(carry_rule=carry_rule))  # type: ignore[arg-type]
    assert res.posterior == pytest.approx([0.46009, 0.53991], abs=1e-4)
    assert not res.trace[0]["steps"][0]["pruned"]


async def test_the_old_absolute_rule_gave_certainty_from_a_near_tie() -> None:
    """What the dev run did: kept for replaying old runs, never the default."""
    res = await infer(_two_quiet_steps(), _factor, InferenceConfig(prune_rule="absolute", carry_rule="eager"))
    assert res.posterior[1] == 1.0 and res.posterior[0] < 1e-299


def test_the_ratio_rule_still_prunes_what_the_step_rules_out() -> None:
    cfg = InferenceConfig()
    assert prune_keep({0: 0.9, 1: 0.03, 2: 0.5}, cfg) == [0, 2]  # 0.03 < 0.05 * 0.9
    assert prune_keep({0: 0.04, 1: 0.03}, cfg) == [0, 1]  # the old rule kept [0] alone
    assert prune_keep({0: 0.5, 1: 0.04}, cfg) == [0, 1]  # a ratio of 12.5 is not "ruled out"
    with pytest.raises(ValueError, match="prune_rule"):
        prune_keep({0: 0.5}, InferenceConfig(prune_rule="relative"))  # type: ignore[arg-type]


async def test_a_question_whose_steps_all_score_low_is_not_answered_with_certainty() -> None:
    """End to end: every step is one of Kofi's own actions (nothing else observed) and the model finds both
    beliefs unlikely at each; the discovery extends back in time over persistence steps."""
    story = ("1 Kofi is a chef.\n2 Kofi wants to make groundnut soup.\n3 Kofi adds peanut butter to the pot.\n"
             "4 Kofi does not notice the swap.")
    perception = {"Kofi": {"observed": [1, 2, 3, 4], "actions": [1, 2, 3, 4]}}
    model = competent_model(agents=["Kofi"], perception=perception, statements=[B1, B2])

    def lik(req: LikelihoodRequest) -> float:
        return LOW.get(req.value, 0.5)

    method = AutoToM(AutoToMConfig(), likelihood=ScriptedLikelihood(lik))
    ans = await method.solve(model, story, "What does Kofi believe the soup contains?", ["peanut butter", "tomato paste"])
    assert max(ans.posterior) < 0.99, ans.posterior
    old = AutoToM(AutoToMConfig(prune_rule="absolute", carry_rule="eager", persistence="nothing-observed",
                                rules=LEGACY_RULES),
                  likelihood=ScriptedLikelihood(lik))
    ans_old = await old.solve(competent_model(agents=["Kofi"], perception=perception, statements=[B1, B2]), story,
                              "What does Kofi believe the soup contains?", ["peanut butter", "tomato paste"])
    assert max(ans_old.posterior) == 1.0  # the defect this file guards, reproduced


# the second road to an exact 1.0: a belief held with >= 0.95 carried as certain into steps where nothing was
# observed; the lazy carry (default) approximates only on entering a step that pays for each carried value

SEEN = "The soup pot holds peanut butter."


def _seen_then_quiet() -> ProblemModel:
    first = StepModel(0, {OBS: Node(OBS, [SEEN], observed=True), BELIEF: Node(BELIEF, [B1, B2])})
    quiet = [StepModel(i, {OBS: Node(OBS, [NOTHING_NEW], observed=True), BELIEF: Node(BELIEF, [B1, B2])})
             for i in (1, 2)]
    return ProblemModel("Kofi", [first, *quiet], BELIEF)


async def _confident(step: int, var: str, value: str, parents: tuple[tuple[str, str], ...]) -> float:
    given = dict(parents)
    if "PrevBelief" in given:
        return 1.0 if value == given["PrevBelief"] else 0.0
    return 0.96 if value == B1 else 0.04


async def test_a_confident_belief_carried_through_quiet_steps_keeps_its_doubt() -> None:
    lazy = await infer(_seen_then_quiet(), _confident, InferenceConfig())
    assert lazy.posterior == pytest.approx([0.96, 0.04])
    assert lazy.trace[0]["steps"][0]["posterior"][BELIEF] == pytest.approx({B1: 0.96, B2: 0.04})
    eager = await infer(_seen_then_quiet(), _confident, InferenceConfig(carry_rule="eager"))
    assert eager.posterior[0] == 1.0  # what the eager carry did (pruned 0.04 < 0.05 * 0.96, then persisted)


async def test_the_lazy_carry_still_approximates_where_it_saves_requests() -> None:
    """Entering a step with an observation, the 0.96 belief is carried as certain: one transition request per
    hypothesis, as before."""
    pm = _seen_then_quiet()
    pm.steps[2].nodes[OBS] = Node(OBS, ["Kofi tastes the soup."], observed=True)
    asked: list[tuple[int, str, tuple[tuple[str, str], ...]]] = []

    async def factor(step: int, var: str, value: str, parents: tuple[tuple[str, str], ...]) -> float:
        given = dict(parents)
        if "PrevBelief" in given and given.get(OBS) == NOTHING_NEW:
            return 1.0 if value == given["PrevBelief"] else 0.0
        asked.append((step, value, parents))
        return 0.96 if value == B1 else 0.04

    res = await infer(pm, factor, InferenceConfig())
    at_last = [a for a in asked if a[0] == 2]
    assert len(at_last) == 2 and {dict(p)["PrevBelief"] for _, _, p in at_last} == {B1}
    assert res.trace[0]["steps"][2]["carried_in"] == {"propagated": B1}


async def test_the_lazy_carry_makes_the_same_requests_as_before(tom_dir: Path) -> None:
    golden = json.loads(GOLDEN.read_text())["scenarios"]
    now = await run_all(tom_dir, {"prune_rule": "absolute", "carry_rule": "lazy",
                                   "discovery_rule": "v2", "persistence": "nothing-observed",
                                   "belief_transition": "asked", "rules": LEGACY_RULES})
    for name, want in golden.items():
        assert now[name]["requests_sha256"] == want["requests_sha256"], name
        assert now[name]["posterior"] == pytest.approx(want["posterior"]), name
