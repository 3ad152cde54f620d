"""SQL statements per participant request: few, and not growing with the conversation.

When participants click without pause, a request's latency is its CPU times the requests queued, and
on PostgreSQL every statement is also a round trip; these bounds catch a per-message query (N+1), a
second participant lookup or a lazy load slipping back into the hot routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from collect_helpers import Participant, ndjson
from sqlalchemy import event


@contextmanager
def counting(app: Any) -> Iterator[list[str]]:
    """The statements SQLAlchemy sends while the block runs (BEGIN/COMMIT and pool pings not included)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split()[0].upper())

    engine = app.state.ctx.db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def count(app: Any, request: Callable[[], Any]) -> int:
    with counting(app) as seen:
        r = request()
    assert r.status_code in (200, 201), r.text[:300]
    return len(seen)


def test_participant_requests_run_a_bounded_number_of_statements(app_maker):
    client, app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    assert count(app, lambda: p.c.get("/task")) == 1  # the participant: that is all a page needs
    p.task()
    per_turn: list[tuple[int, int, int, int]] = []
    for i in range(3):
        n_state = count(app, lambda: p.c.get(f"/api/c/{p.cid}/state"))
        n_send = count(app, lambda i=i: p.send(f"message {i}", f"reason {i}"))
        with counting(app) as seen:
            g = p.generate()
        done = ndjson(g.text)[-1]
        assert done["type"] == "done"
        n_react = count(app, lambda i=i, mid=done["message_id"]: p.react(mid, f"reaction {i}"))
        per_turn.append((n_state, n_send, len(seen), n_react))
    # the first turn has no earlier answer whose reaction must be checked; from then on it is constant
    assert per_turn[1] == per_turn[2], per_turn
    state, send, generate, react = per_turn[2]
    # state: participant + conversation in one, messages, notes; send: those, the owed-reaction check and
    # two inserts; generate: load (2) and save (check + insert); reaction: owner, message, existing note, insert
    assert (state, send, generate, react) == (3, 5, 4, 4), per_turn
    assert count(app, lambda: p.c.get(f"/c/{p.cid}")) == 3


def test_sqlite_kept_connection_rolls_back_a_failed_transaction_and_serves_the_next(tmp_path):
    """SQLite's transactions share one kept connection: a failed one leaves nothing behind."""
    import pytest

    from thoughttrace.collect import queries
    from thoughttrace.collect.db import Database
    from thoughttrace.collect.migrate import upgrade

    db = Database(f"sqlite:///{tmp_path / 'kept.sqlite'}")
    upgrade(db.engine)
    try:
        with pytest.raises(RuntimeError), db.transaction() as c:
            queries.insert_participant(c, prolific_pid="gone", study_id=None, session_id=None)
            raise RuntimeError("the route refused")
        with db.transaction() as c:
            assert queries.participant_by_prolific_pid(c, "gone") is None
            kept = c
            queries.insert_participant(c, prolific_pid="kept", study_id=None, session_id=None)
        with db.transaction() as c:
            assert c is kept and queries.participant_by_prolific_pid(c, "kept") is not None
        with db.engine.connect() as other:  # committed: another connection sees it
            assert queries.participant_by_prolific_pid(other, "kept") is not None
    finally:
        db.dispose()
