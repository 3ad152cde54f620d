"""Exact inference against posteriors computed by hand (scripted factor tables, no model)."""

from __future__ import annotations

import pytest

from thoughttrace.tom.inference import InferenceConfig, entropy, infer, normalise_log, ties
from thoughttrace.tom.model_space import (
    ACTION,
    BELIEF,
    GOAL,
    OBS,
    STATE,
    Node,
    ProblemModel,
    StepModel,
    parent_graph,
    repair,
)


class Table:
    """factor(step, var, value, parents) from a dict keyed by (var, value, parent values...)."""

    def __init__(self, table: dict[tuple[str, ...], float]) -> None:
        self.table = table
        self.requests: list[tuple[str, ...]] = []

    async def __call__(self, step: int, var: str, value: str, parents: tuple[tuple[str, str], ...]) -> float:
        key = (var, value, *[v for _, v in parents])
        self.requests.append(key)
        return self.table[key]


def obs(name: str, value: str) -> Node:
    return Node(name, [value], observed=True)


async def test_belief_filtering_over_two_steps_with_an_action() -> None:
    steps = [
        StepModel(0, {STATE: obs(STATE, "s0"), OBS: obs(OBS, "o0"), BELIEF: Node(BELIEF, ["x", "y"])}),
        StepModel(1, {STATE: obs(STATE, "s1"), OBS: obs(OBS, "o1"), BELIEF: Node(BELIEF, ["x", "y"]),
                      ACTION: obs(ACTION, "a1")}),
    ]
    pm = ProblemModel("Ann", steps, BELIEF, constant={GOAL: obs(GOAL, "g")})
    table = Table({
        (BELIEF, "x", "o0"): 0.9, (BELIEF, "y", "o0"): 0.3,
        (BELIEF, "x", "x", "o1"): 0.9, (BELIEF, "y", "x", "o1"): 0.1,
        (BELIEF, "x", "y", "o1"): 0.2, (BELIEF, "y", "y", "o1"): 0.8,
        (ACTION, "a1", "g", "x"): 0.7, (ACTION, "a1", "g", "y"): 0.4,
    })
    res = await infer(pm, table)
    # prior on PrevBelief = step-0 posterior (0.75, 0.25)
    wx = (0.75 * 0.9 + 0.25 * 0.2) * 0.7
    wy = (0.75 * 0.1 + 0.25 * 0.8) * 0.4
    assert res.posterior == pytest.approx([wx / (wx + wy), wy / (wx + wy)])
    assert res.trace[0]["steps"][0]["posterior"][BELIEF] == pytest.approx({"x": 0.75, "y": 0.25})
    # factors of observed-only variables (O <- S) are constants and never requested
    assert not any(k[0] == OBS for k in table.requests)


async def test_latent_observation_with_pruning() -> None:
    step = StepModel(0, {STATE: obs(STATE, "s"), OBS: Node(OBS, ["saw", "none", "garbage"]),
                         BELIEF: Node(BELIEF, ["x", "y"])})
    table = Table({
        (OBS, "saw", "s"): 0.6, (OBS, "none", "s"): 0.3, (OBS, "garbage", "s"): 0.01,
        (BELIEF, "x", "saw"): 0.9, (BELIEF, "y", "saw"): 0.2,
        (BELIEF, "x", "none"): 0.5, (BELIEF, "y", "none"): 0.5,
    })
    res = await infer(ProblemModel("Ann", [step], BELIEF), table, InferenceConfig(prune_threshold=0.05))
    wx, wy = 0.6 * 0.9 + 0.3 * 0.5, 0.6 * 0.2 + 0.3 * 0.5
    assert res.posterior == pytest.approx([wx / (wx + wy), wy / (wx + wy)])
    assert res.trace[0]["steps"][0]["pruned"] == {OBS: ["garbage"]}
    assert not any("garbage" in k for k in table.requests if k[0] == BELIEF)  # pruned before its children


async def test_constant_goal_combines_evidence_over_steps() -> None:
    steps = [StepModel(0, {ACTION: obs(ACTION, "a0")}), StepModel(1, {ACTION: obs(ACTION, "a1")})]
    pm = ProblemModel("Ann", steps, GOAL, constant={GOAL: Node(GOAL, ["g1", "g2"])})
    table = Table({(ACTION, "a0", "g1"): 0.8, (ACTION, "a0", "g2"): 0.4,
                   (ACTION, "a1", "g1"): 0.5, (ACTION, "a1", "g2"): 0.9})
    res = await infer(pm, table)
    assert res.posterior == pytest.approx([0.4 / 0.76, 0.36 / 0.76])
    # with a prior on the goal
    pm.constant[GOAL] = Node(GOAL, ["g1", "g2"], prior=[1.0, 3.0])
    res = await infer(pm, table)
    assert res.posterior == pytest.approx([0.4 / (0.4 + 3 * 0.36), 3 * 0.36 / (0.4 + 3 * 0.36)])


async def test_query_marginalises_a_latent_goal() -> None:
    step = StepModel(0, {OBS: obs(OBS, "o"), BELIEF: Node(BELIEF, ["x", "y"]), ACTION: obs(ACTION, "a")})
    pm = ProblemModel("Ann", [step], BELIEF, constant={GOAL: Node(GOAL, ["g1", "g2"])})
    table = Table({(BELIEF, "x", "o"): 0.5, (BELIEF, "y", "o"): 0.5,
                   (ACTION, "a", "g1", "x"): 0.9, (ACTION, "a", "g1", "y"): 0.1,
                   (ACTION, "a", "g2", "x"): 0.3, (ACTION, "a", "g2", "y"): 0.3})
    res = await infer(pm, table)
    wx = 0.5 * 0.5 * 0.9 + 0.5 * 0.5 * 0.3
    wy = 0.5 * 0.5 * 0.1 + 0.5 * 0.5 * 0.3
    assert res.posterior == pytest.approx([wx / (wx + wy), wy / (wx + wy)])
    assert res.constant_posterior[GOAL] == pytest.approx([(0.45 + 0.05) / 0.8, 0.3 / 0.8])


async def test_a_tie_is_reported_as_a_tie() -> None:
    step = StepModel(0, {OBS: obs(OBS, "o"), BELIEF: Node(BELIEF, ["x", "y", "z"])})
    table = Table({(BELIEF, "x", "o"): 0.7, (BELIEF, "y", "o"): 0.7, (BELIEF, "z", "o"): 0.1})
    res = await infer(ProblemModel("Ann", [step], BELIEF), table)
    assert ties(res.posterior) == [0, 1]
    assert ties(res.posterior, least=True) == [2]


async def test_confident_belief_is_propagated_as_certain() -> None:
    steps = [StepModel(0, {OBS: obs(OBS, "o0"), BELIEF: Node(BELIEF, ["x", "y"])}),
             StepModel(1, {OBS: obs(OBS, "o1"), BELIEF: Node(BELIEF, ["x", "y"])})]
    table = Table({(BELIEF, "x", "o0"): 0.99, (BELIEF, "y", "o0"): 0.01,
                   (BELIEF, "x", "x", "o1"): 0.6, (BELIEF, "y", "x", "o1"): 0.2})
    res = await infer(ProblemModel("Ann", steps, BELIEF), table,
                      InferenceConfig(prune_threshold=0.0, propagate_threshold=0.95))
    assert res.posterior == pytest.approx([0.75, 0.25])
    # the lazy carry (default) applies it on entering step 1, which asks a transition per carried value
    assert res.trace[0]["steps"][1]["carried_in"] == {"propagated": "x"}
    assert not any(k[:3] in {(BELIEF, "x", "y"), (BELIEF, "y", "y")} for k in table.requests)
    eager = await infer(ProblemModel("Ann", steps, BELIEF), table,
                        InferenceConfig(prune_threshold=0.0, propagate_threshold=0.95, carry_rule="eager"))
    assert eager.posterior == pytest.approx([0.75, 0.25]) and eager.trace[0]["steps"][0]["propagated"] == "x"


def test_graph_rewriting_bypasses_absent_variables_without_leaking_state() -> None:
    g = parent_graph({STATE, OBS, BELIEF, ACTION, GOAL})
    assert g[ACTION] == (GOAL, BELIEF) and g[BELIEF] == (OBS,) and g[OBS] == (STATE,)
    g = parent_graph({STATE, BELIEF, ACTION})  # no observation: belief never conditions on the world state
    assert g[BELIEF] == () and g[ACTION] == (BELIEF,)
    g = parent_graph({STATE, OBS, ACTION, GOAL})  # no belief: the action depends on what was observed
    assert g[ACTION] == (GOAL, OBS)
    assert parent_graph({BELIEF, OBS}, with_prev_belief=True)[BELIEF] == ("PrevBelief", OBS)


def test_repair_names_the_nearest_valid_model() -> None:
    assert repair(["B", "observations", "Nonsense"], ACTION) == frozenset({STATE, BELIEF, OBS, ACTION})
    assert repair([], GOAL, observed=[BELIEF]) == frozenset({STATE, GOAL, BELIEF})


def test_helpers() -> None:
    assert normalise_log([float("-inf")] * 2) == [0.5, 0.5]
    assert entropy([0.5, 0.5]) == pytest.approx(0.6931, abs=1e-4)
