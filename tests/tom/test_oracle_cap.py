"""The engine's cap with a perfect likelihood (oracle.py): on a fixed subset of dev items it is 100 %, so a new rule
that costs an answer the model could have had fails here. The subset runs in about a second (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from thoughttrace.tom.autotom import AutoToMConfig
from thoughttrace.tom.benchmarks import BENCHMARKS, load_uniform
from thoughttrace.tom.items import ToMItem, select
from thoughttrace.tom.likelihood import LikelihoodRequest
from thoughttrace.tom.oracle import OracleLikelihood, cap, cap_summary
from thoughttrace.tom.rules import without

#: dev items per benchmark in the pinned subset (stratified by question type): 30 items, the MuMA-ToM "LEAST likely"
#: questions among them
PER_BENCHMARK = 6
#: hand-written items for what the benchmarks' dev items lack: a gold answer the story never names
HAND = [ToMItem(id="hand-not-given", benchmark="hand",
                story="1 Ava entered the den.\n2 The pear is in the red_box.\n3 The tin is in the den.",
                question="Where is the apple?", choices=["red_box", "tin", "Not Given"], answer="C", split="dev")]


@pytest.fixture(scope="module")
def subset(tom_dir: Path) -> list[ToMItem]:
    return [it for b in BENCHMARKS for it in select(load_uniform(tom_dir, b), split="dev", limit=PER_BENCHMARK)] + HAND


async def test_the_cap_on_the_pinned_subset_is_every_item(subset: list[ToMItem]) -> None:
    rows = await cap(subset)
    summary = cap_summary(rows)
    assert summary["overall"] == {"k": len(subset), "n": len(subset)}, summary["missed"]
    assert any(r.least_likely for r in rows)  # the subset does hold "least likely" questions


@pytest.mark.parametrize("rule", ["least_likely", "absent_choices_grouped"])
async def test_turning_a_needed_rule_off_lowers_the_cap(subset: list[ToMItem], rule: str) -> None:
    """What the pin catches: without the structural "least" reading the MuMA-ToM "LEAST likely" items are lost;
    without the grouping the Hi-ToM questions (15 choices, most never named) exceed the budget at their first model."""
    rows = await cap(subset, AutoToMConfig(rules=without(rule)))
    assert sum(r.correct for r in rows) < len(subset)


async def test_the_oracle_prefers_the_gold_choice_wherever_it_is_named() -> None:
    lik = OracleLikelihood(["Mei believes the tide is high at 3 AM.", "Mei believes the tide is high at 5 AM."], 0)
    def req(value: str, *facts: tuple[str, str]) -> LikelihoodRequest:
        return LikelihoodRequest(agent="Mei", variable="What Mei believes", value=value, facts=tuple(facts))
    assert await lik(req("Mei thinks the tide is high at 3 AM")) == 0.9  # short tokens tell them apart
    assert await lik(req("Mei thinks the tide is high at 5 AM")) == 0.1
    assert await lik(req("Mei checks the tide chart", ("What Mei wants", "at 3 AM"))) == 0.9  # the value names none
    assert await lik(req("Mei checks the chart")) == 0.5
    least = OracleLikelihood(["a red box", "a green tin"], 0, least=True)
    assert await least(req("the red box")) == 0.1 and await least(req("the green tin")) == 0.9


@pytest.fixture(scope="module")
def seeing_subset(tom_dir: Path) -> list[ToMItem]:
    """10 dev items each of ToMi, Hi-ToM, MuMA-ToM and BigToM (MMToM-QA's goal items need a perception model that
    lists pronoun-subject acts, docs/tom.md)."""
    return [it for b in ("tomi", "hitom", "muma_tom", "bigtom") for it in select(load_uniform(tom_dir, b), split="dev",
                                                                                 limit=10)]


async def test_the_cap_with_a_seeing_perception_is_every_item(seeing_subset: list[ToMItem]) -> None:
    """With the perception step run (oracle.seeing_model: it saw everything, did nothing), the perception rules decide
    what each agent missed and did; on this subset they lose nothing."""
    rows = await cap(seeing_subset, perception="all")
    assert [r.id for r in rows if not r.correct] == []


@pytest.mark.parametrize("rule", ["subject_action", "own_acts_observed"])
async def test_with_a_seeing_perception_turning_a_needed_rule_off_lowers_the_cap(
        seeing_subset: list[ToMItem], rule: str) -> None:
    rows = await cap(seeing_subset, AutoToMConfig(rules=without(rule)), perception="all")
    assert sum(r.correct for r in rows) < len(seeing_subset)
