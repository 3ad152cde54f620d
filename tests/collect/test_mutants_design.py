"""Design rules that scripts/mutate.py found unprotected (collect/design.py): which rule builds the model and
task orders at each boundary, and which crossing pairs them.

Why: design.json tells a reader how participants were counterbalanced; the rule it names must be the rule that
made the rows, and at every boundary (as many positions as models, a single task, one condition) the design
stays balanced: every ordered sequence or Latin-square row once, every (model order, task order) pair once.
"""

from __future__ import annotations

import itertools

import pytest

from thoughttrace.collect.design import cross, k_permutations, model_orders, task_orders, williams_square


def test_one_condition_is_a_one_cell_square_and_none_is_refused() -> None:
    assert williams_square(1) == [[0]]
    with pytest.raises(ValueError, match="at least one condition"):
        williams_square(0)


def test_k_permutations_lists_every_ordered_sequence_once_in_latin_blocks() -> None:
    rows = k_permutations(3, 2)
    assert sorted(map(tuple, rows)) == sorted(itertools.permutations(range(3), 2))
    assert rows[:3] == [[0, 1], [1, 2], [2, 0]]  # a block: one sequence starting with 0, shifted


def test_as_many_positions_as_models_is_a_williams_square_without_repeats() -> None:
    rows, rule = model_orders(3, 3)
    assert rows == williams_square(3) and rule.startswith("williams: ") and "repeat" not in rule
    rows, rule = model_orders(2, 3)
    assert rows == [[0, 1, 0], [1, 0, 1]] and "positions past 2 repeat the row from its start" in rule


def test_fewer_positions_than_models_use_every_sequence_until_there_are_too_many() -> None:
    rows, rule = model_orders(4, 2)
    assert len(rows) == 12 and rule.startswith("permutations: ")
    rows, rule = model_orders(8, 5)  # 6720 sequences > 5040: the first 5 positions of a Williams square
    assert rows == [r[:5] for r in williams_square(8)] and rule.startswith("williams-prefix: 6720 sequences")


@pytest.mark.parametrize(("n_tasks", "rotate"), [(3, False), (1, True), (1, False)])
def test_tasks_keep_the_listed_order_unless_rotated_and_more_than_one(n_tasks: int, rotate: bool) -> None:
    rows, rule = task_orders(n_tasks, rotate, n_tasks)
    assert rows == [list(range(n_tasks))] and rule.startswith("as listed")
    assert task_orders(3, True, 3)[0] == williams_square(3)


def test_the_crossing_rule_at_each_case() -> None:
    assert cross(4, 4, 1, 1) == ([(0, 0), (1, 0), (2, 0), (3, 0)], "passes")
    pairs, rule = cross(6, 3, 2, 2)  # 6 model orders, an even task square of 2 rows: passes
    assert rule == "passes" and sorted(pairs) == [(i, j) for i in range(6) for j in range(2)]
    pairs, rule = cross(3, 3, 2, 2)  # 3 model orders do not split into task blocks of 2: blocks
    assert rule == "blocks" and sorted(pairs) == [(i, j) for i in range(3) for j in range(2)]
