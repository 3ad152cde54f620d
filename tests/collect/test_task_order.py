"""Fixed task lists are counterbalanced: each participant gets the listed tasks in the order of a row
of a balanced Latin square (Williams), balanced over (task, position), crossed with the model orders so
no model is tied to one task, and assigned through the same race-free design row as the models."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from collect_helpers import Participant
from sqlalchemy import select

from thoughttrace.collect import flow
from thoughttrace.collect.db import Conversation
from thoughttrace.collect.study import parse_study

TASKS = [{"statement": f"Task {x}", "instructions": f"Instructions {x}"} for x in "ABC"]


def _study(n_models: int, n_tasks: int, **extra: object):
    return parse_study({"models": [{"key": k, "spec": "scripted"} for k in "abcd"[:n_models]],
                        "tasks": TASKS[:n_tasks] if n_tasks <= 3 else
                        [{"statement": f"Task {i}"} for i in range(n_tasks)], **extra})


@pytest.mark.parametrize("n_models,n_tasks", [(2, 2), (2, 3), (3, 3), (2, 4), (3, 2), (4, 2)])
def test_rows_filled_in_turn_balance_both_rotations_and_cross_them(n_models, n_tasks):
    study = _study(n_models, n_tasks)
    size = flow.design_size(study)
    williams = {n: n if n % 2 == 0 else 2 * n for n in range(1, 6)}
    model_rows = williams[n_models] if n_tasks >= n_models else len(list(itertools.permutations(range(n_models),
                                                                                                  n_tasks)))
    assert size == model_rows * williams[n_tasks]
    for n in range(1, 3 * size + 1):
        rows = [r % size for r in range(n)]  # least-filled first, ties lowest: row 0, 1, ... in turn
        models = Counter((m, k) for r in rows for k, m in enumerate(flow.model_sequence(study, r)))
        tasks = Counter((t, k) for r in rows for k, t in enumerate(flow.task_sequence(study, r)))
        model_counts = [models.get((m.key, k), 0) for m in study.models for k in range(n_tasks)]
        task_counts = [tasks.get((t, k), 0) for t in range(n_tasks) for k in range(n_tasks)]
        assert max(model_counts) - min(model_counts) <= 1, (n, models)
        assert max(task_counts) - min(task_counts) <= 1, (n, tasks)
    for r in range(size):
        seq = flow.task_sequence(study, r)
        assert sorted(seq) == list(range(n_tasks))  # every task once
    # each task immediately precedes each other task equally often over a full cycle (a Williams square)
    follows = Counter((s[k], s[k + 1]) for s in (flow.task_sequence(study, r) for r in range(size))
                      for k in range(n_tasks - 1))
    assert len(follows) == n_tasks * (n_tasks - 1) and len(set(follows.values())) == 1, follows
    # one full cycle of rows meets every (model order, task order) pair once: models are not tied to tasks
    pairs = Counter((tuple(flow.model_sequence(study, r)), tuple(flow.task_sequence(study, r))) for r in range(size))
    assert len(pairs) == size and set(pairs.values()) == {1}, pairs


def test_as_listed_and_free_tasks_keep_the_listed_order():
    study = _study(2, 3, task_order="as_listed")
    assert flow.design_size(study) == 2
    assert {tuple(flow.task_sequence(study, r)) for r in range(6)} == {(0, 1, 2)}
    free = parse_study({"models": [{"key": "a", "spec": "scripted"}], "tasks_per_participant": 3})
    assert flow.task_sequence(free, 0) == [0, 1, 2] and flow.design_size(free) == 1


def test_the_study_yaml_names_a_wrong_task_order():
    from thoughttrace.collect.study import StudyConfigError

    with pytest.raises(StudyConfigError, match="task_order"):
        parse_study({"models": [{"key": "a", "spec": "scripted"}], "tasks": TASKS, "task_order": "shuffle"})


def test_participants_get_rotated_fixed_tasks_through_the_app(app_maker):
    client, app, _ = app_maker(tasks=TASKS, tasks_per_participant=3)  # 2 models x 3 tasks: 6 design rows
    seen_first_pages = []
    for _ in range(12):
        p = Participant(client())
        p.start()
        p.consent()
        p.quiz()
        for t in range(3):
            page = p.get("/task").text
            if t == 0:
                seen_first_pages.append(page)
            p.task("ignored: the task is fixed")
            p.turn("hi", "because", "fine")
            p.finish()
            p.summary()
    with app.state.ctx.db.session() as s:
        convs = s.scalars(select(Conversation)).all()
    by_person: dict[int, list[str]] = {}
    for c in sorted(convs, key=lambda c: (c.participant_id, c.task_index)):
        by_person.setdefault(c.participant_id, []).append(c.task_statement)
    listed = [t["statement"] for t in TASKS]
    for seq in by_person.values():
        assert sorted(seq) == listed, seq  # all three
    orders = Counter(tuple(seq) for seq in by_person.values())
    assert len(orders) == 6 and set(orders.values()) == {2}, orders  # every task order, equally often
    task_cells = Counter((c.task_statement, c.task_index) for c in convs)
    assert len(task_cells) == 9 and max(task_cells.values()) - min(task_cells.values()) <= 1, task_cells
    model_cells = Counter((c.model_key, c.task_index) for c in convs)
    assert len(model_cells) == 6 and max(model_cells.values()) - min(model_cells.values()) <= 1, model_cells
    firsts = Counter((c.model_key, c.task_statement) for c in convs if c.task_index == 0)
    assert len(firsts) == 6 and set(firsts.values()) == {2}, firsts  # every model meets every task first
    # the task page shows the rotated task and its own instructions (what the participant actually read)
    for page, seq in zip(seen_first_pages, by_person.values(), strict=True):
        letter = seq[0].split()[-1]
        assert f"Task {letter}" in page and f"Instructions {letter}" in page
