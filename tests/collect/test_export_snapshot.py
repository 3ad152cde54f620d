"""The export reads from a snapshot that takes no lock: a participant's write goes through while an
export is half-way, and the export keeps seeing the database as it was when it started (the timing
is measured by bench/export_stall.py, not here)."""

from __future__ import annotations

from collect_helpers import Participant
from sqlalchemy import text

from thoughttrace.collect.export import iter_export


def test_a_write_goes_through_while_an_export_is_half_way(app_maker):
    client, app, _ = app_maker()
    for _ in range(3):
        p = Participant(client())
        p.full_journey(turns=1, tasks=2)
    db = app.state.ctx.db
    with db.snapshot() as s:
        records = iter_export(s, batch=1)
        first = next(records)  # the export has started reading
        # a participant's transaction (SQLite: BEGIN IMMEDIATE, the write lock) is free while we export
        with db.transaction() as c:
            c.execute(text("UPDATE conversations SET task_summary = 'CHANGED-MEANWHILE'"))
        rest = list(records)
    assert len([first, *rest]) == 6
    assert all(r["task_summary"] != "CHANGED-MEANWHILE" for r in [first, *rest])  # one consistent snapshot
    with db.snapshot() as s:
        assert all(r["task_summary"] == "CHANGED-MEANWHILE" for r in iter_export(s))
