"""Model discovery with scripted evaluations: search order, threshold, best gain, gain below alpha, budget."""

from __future__ import annotations

import pytest

from thoughttrace.tom.discovery import ModelSpec, discover, utility

BASE = frozenset({"State", "Observation", "Belief"})
CANDIDATES = ["Action", "Goal", "Utterance"]


async def test_extends_back_in_time_when_no_variable_helps_and_stops_at_the_threshold() -> None:
    seen: list[ModelSpec] = []

    async def evaluate(spec: ModelSpec) -> list[float]:
        seen.append(spec)
        return [0.95, 0.05] if spec.start <= 1 else [0.5, 0.5]

    res = await discover(ModelSpec(BASE, 3), evaluate, candidates=CANDIDATES)
    assert res.stopped_because == "threshold"
    # the method's order: the variables are adjusted at each start before the previous step is included
    assert [s.start for s in seen] == [3, 3, 3, 3, 2, 2, 2, 2, 1]
    assert [h["phase"] for h in res.history][4:6] == ["extend-time", "try-add Action"]
    assert res.spec == ModelSpec(BASE, 1)
    assert res.utility == pytest.approx(utility([0.95, 0.05], res.spec))


async def test_a_variable_that_answers_at_the_last_step_never_pays_for_earlier_steps() -> None:
    seen: list[ModelSpec] = []

    async def evaluate(spec: ModelSpec) -> list[float]:
        seen.append(spec)
        return [0.95, 0.05] if "Action" in spec.variables else [0.5, 0.5]

    res = await discover(ModelSpec(BASE, 3), evaluate, candidates=CANDIDATES)
    assert res.stopped_because == "threshold" and res.spec == ModelSpec(BASE | {"Action"}, 3)
    assert {s.start for s in seen} == {3}
    # engine v2 before (kept for replays): back to step 0 first, so every trial paid for all four steps
    seen.clear()
    old = await discover(ModelSpec(BASE, 3), evaluate, candidates=CANDIDATES, rule="v2")
    assert [s.start for s in seen] == [3, 2, 1, 0, 0, 0, 0]
    assert old.spec == ModelSpec(BASE | {"Action"}, 0)


async def test_an_unknown_order_is_refused() -> None:
    async def evaluate(spec: ModelSpec) -> list[float]:
        return [0.5, 0.5]

    with pytest.raises(ValueError, match="method"):
        await discover(ModelSpec(BASE, 3), evaluate, candidates=CANDIDATES, rule="sideways")  # type: ignore[arg-type]


async def test_adds_the_variable_with_the_best_gain() -> None:
    async def evaluate(spec: ModelSpec) -> list[float]:
        if "Action" in spec.variables:
            return [0.9, 0.1]
        if "Goal" in spec.variables:
            return [0.7, 0.3]
        return [0.5, 0.5]

    res = await discover(ModelSpec(BASE, 0), evaluate, candidates=CANDIDATES)
    assert res.spec.variables == BASE | {"Action"}
    assert res.stopped_because == "threshold"
    assert [h["phase"] for h in res.history][:4] == ["initial", "try-add Action", "try-add Goal", "try-add Utterance"]


async def test_stops_when_the_gain_is_below_alpha() -> None:
    async def evaluate(spec: ModelSpec) -> list[float]:
        return [0.6, 0.4] if "Goal" not in spec.variables else [0.61, 0.39]

    res = await discover(ModelSpec(BASE, 0), evaluate, candidates=CANDIDATES, alpha=0.02)
    assert res.stopped_because == "gain-below-alpha"
    assert res.spec.variables == BASE


async def test_keeps_adding_while_the_gain_exceeds_alpha() -> None:
    async def evaluate(spec: ModelSpec) -> list[float]:
        n = len(spec.variables & {"Action", "Goal"})
        return [[0.5, 0.5], [0.75, 0.25], [0.8, 0.2]][n]

    res = await discover(ModelSpec(BASE, 0), evaluate, candidates=CANDIDATES, threshold=-0.1)
    # adding the first one gains 0.131 > alpha; the second gains 0.062 > alpha; Utterance gains -0.02
    assert res.spec.variables == BASE | {"Action", "Goal"}
    assert res.stopped_because == "gain-below-alpha"


async def test_stops_when_the_budget_is_spent() -> None:
    async def evaluate(spec: ModelSpec) -> list[float]:
        return [0.5, 0.5]

    res = await discover(ModelSpec(BASE, 4), evaluate, candidates=CANDIDATES, budget_ok=lambda: False)
    assert res.stopped_because == "budget" and res.spec.start == 4


async def test_the_stop_is_on_the_answers_certainty_not_on_the_size_charge() -> None:
    """-0.673 = -H(0.6, 0.4): a 65 % answer is confident whatever the model's size; under v2 the stop compared U,
    so four variables (alpha * 4 = 0.08) made the same answer search on."""
    async def evaluate(spec: ModelSpec) -> list[float]:
        return [0.65, 0.35]

    four = BASE | {"Action"}
    res = await discover(ModelSpec(four, 2), evaluate, candidates=CANDIDATES)
    assert res.stopped_because == "threshold" and res.spec == ModelSpec(four, 2) and len(res.history) == 1
    assert res.utility == pytest.approx(utility([0.65, 0.35], res.spec)) and res.utility < -0.673
    old = await discover(ModelSpec(four, 2), evaluate, candidates=CANDIDATES, rule="v2")
    assert old.stopped_because == "gain-below-alpha" and len(old.history) > 1
