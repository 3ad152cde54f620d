"""Counterbalancing a reviewer accepts: Williams squares (each condition immediately precedes each other
equally often), every ordered sequence equally often when fewer positions than models, models crossed
with tasks, balanced assignment on a real database that counts only participants who stayed in."""

from __future__ import annotations

import itertools
import threading
from collections import Counter

import pytest
from sqlalchemy import text

from thoughttrace.collect import flow, queries
from thoughttrace.collect.db import Database
from thoughttrace.collect.design import build_design, k_permutations, williams_square
from thoughttrace.collect.migrate import upgrade
from thoughttrace.collect.study import parse_study


def _follows(rows: list[list[int]]) -> Counter[tuple[int, int]]:
    return Counter((r[k], r[k + 1]) for r in rows for k in range(len(r) - 1))


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_williams_square_each_ordered_pair_equally_often(n):
    rows = williams_square(n)
    assert len(rows) == (n if n % 2 == 0 else 2 * n)  # odd n: the pair of mirrored squares
    assert all(sorted(r) == list(range(n)) for r in rows)  # each row: every condition once
    for block in (rows[:n], rows[n:]) if n % 2 else (rows,):  # each square: a Latin square
        assert all(sorted(col) == list(range(n)) for col in zip(*block, strict=True))
    follows = _follows(rows)
    assert set(follows) == set(itertools.permutations(range(n), 2)), follows  # every ordered pair occurs ...
    assert len(set(follows.values())) == 1, follows  # ... equally often
    # the cyclic square it replaces fails this: only a->b, b->c, c->a for 3
    cyclic = [[(i + k) % n for k in range(n)] for i in range(n)]
    assert n == 2 or len(_follows(cyclic)) < n * (n - 1)


def test_williams_3_and_4_exact_counts():
    assert _follows(williams_square(3)) == {p: 2 for p in itertools.permutations(range(3), 2)}
    assert _follows(williams_square(4)) == {p: 1 for p in itertools.permutations(range(4), 2)}


def test_fewer_positions_than_models_lists_every_ordered_sequence_once():
    rows = k_permutations(4, 2)
    assert sorted(map(tuple, rows)) == sorted(itertools.permutations(range(4), 2))
    for start in range(0, len(rows), 4):  # Latin blocks: rows filled in turn stay balanced per position
        assert all(sorted(col) == list(range(4)) for col in zip(*rows[start:start + 4], strict=True))
    d = build_design(("a", "b", "c", "d"), 2, 0, False)
    assert d.model_rule.startswith("permutations") and len(d.rows) == 12


def test_models_are_crossed_with_task_orders():
    d = build_design(("a", "b", "c"), 2, 2, True)
    assert len(d.rows) == 12  # 6 model orders x 2 task orders
    pairs = Counter((r.models, r.tasks) for r in d.rows)
    assert len(pairs) == 12 and set(pairs.values()) == {1}
    doc = d.to_dict()
    assert doc["model_rule"].startswith("permutations") and doc["task_rule"].startswith("williams")
    assert [r["row"] for r in doc["rows"]] == list(range(12)) and doc["design_id"] == d.design_id


def _assign_many(db: Database, study, n: int, hold_s: float = 0.0) -> list[queries.ParticipantRow]:
    people = []
    for _ in range(n):
        with db.transaction() as c:
            p = queries.insert_participant(c, prolific_pid=None, study_id=None, session_id=None)
            queries.update_participant(c, p, stage="task")
            flow.assign_design_row(c, p, study)
            if hold_s:  # keep the transaction open a moment: a concurrent one must not read stale counts
                c.execute(text("SELECT pg_sleep(:s)"), {"s": hold_s})
        people.append(p)
    return people


@pytest.fixture
def sqlite_db(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'design.sqlite'}")
    upgrade(db.engine)
    yield db
    db.dispose()


def test_300_participants_with_3_models_get_all_6_orders_within_1(sqlite_db, capsys):
    study = parse_study({"models": [{"key": k, "spec": "scripted"} for k in "abc"], "tasks_per_participant": 2})
    people = _assign_many(sqlite_db, study, 300)
    orders = Counter(tuple(flow.model_sequence(study, p.design_row)) for p in people)
    with capsys.disabled():
        print("\nmodel orders over 300 participants:", dict(sorted(orders.items())))
    assert set(orders) == set(itertools.permutations("abc", 2)), orders  # b->a, c->b, a->c occur too
    assert max(orders.values()) - min(orders.values()) <= 1, orders
    # at every moment on the way, not only at the end
    running: Counter[tuple[str, ...]] = Counter()
    for p in people:
        running[tuple(flow.model_sequence(study, p.design_row))] += 1
        assert max(running.values()) - min(running.get(o, 0) for o in itertools.permutations("abc", 2)) <= 1


def test_withdrawn_and_screened_out_participants_free_their_row(sqlite_db):
    study = parse_study({"models": [{"key": k, "spec": "scripted"} for k in "abc"], "tasks_per_participant": 3})
    first = _assign_many(sqlite_db, study, 6)  # one per row of the 3-model Williams design
    assert sorted(p.design_row for p in first) == list(range(6))
    with sqlite_db.transaction() as c:
        queries.update_participant(c, first[2], stage="withdrawn")
        queries.update_participant(c, first[4], stage="screened_out")
    again = _assign_many(sqlite_db, study, 2)
    assert sorted(p.design_row for p in again) == sorted([first[2].design_row, first[4].design_row])


@pytest.mark.postgres
def test_assignment_is_race_free_on_postgresql(pg_url):
    """Six concurrent transactions over two engines ("workers") per round, each held open after its
    assignment: without the advisory lock they read the same counts and take the same row."""
    from collect_helpers import fresh_pg_url

    url, drop = fresh_pg_url(pg_url)
    dbs = [Database(url) for _ in range(2)]
    try:
        upgrade(dbs[0].engine)
        study = parse_study({"models": [{"key": k, "spec": "scripted"} for k in "abc"], "tasks_per_participant": 2})
        rounds, per_round = 6, 6
        barrier = threading.Barrier(per_round)
        rows: list[int] = []
        lock = threading.Lock()

        def worker(db: Database) -> None:
            for _ in range(rounds):
                barrier.wait()  # every thread starts its transaction at the same moment
                p = _assign_many(db, study, 1, hold_s=0.02)[0]
                with lock:
                    rows.append(p.design_row)

        threads = [threading.Thread(target=worker, args=(dbs[i % 2],)) for i in range(per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts = Counter(rows)
        assert len(rows) == 36 and set(counts.values()) == {6}, counts  # 36 = 6 x 6 rows: none doubled
    finally:
        for db in dbs:
            db.dispose()
        drop()
