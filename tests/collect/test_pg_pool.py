"""PostgreSQL pool: a pooled connection that died while it rested (a database restart, a dropped
connection) is replaced before a participant request uses it, so the request still succeeds."""

from __future__ import annotations

import secrets

import pytest
from collect_helpers import Participant, fresh_pg_url, scripted_pool
from collect_helpers import study as make_study
from sqlalchemy import create_engine, text

from thoughttrace.collect import db as dbmod
from thoughttrace.collect.settings import Settings

pytestmark = pytest.mark.postgres


def _kill_backends(base_url: str, app_name: str) -> int:
    """Terminate the server processes of this test's app (found by its application_name) only."""
    admin = create_engine(base_url)
    try:
        with admin.begin() as c:
            return len(c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE application_name = :a"), {"a": app_name}).all())
    finally:
        admin.dispose()


@pytest.mark.parametrize("threshold, survives", [(0.0, True), (1e9, False)])
def test_a_connection_killed_while_idle_is_replaced(pg_url, monkeypatch, threshold, survives):
    from fastapi.testclient import TestClient

    from thoughttrace.collect.app import create_app

    # threshold 0: every rested connection is pinged; 1e9: none is (the request then meets the dead one)
    monkeypatch.setattr(dbmod, "PING_AFTER_IDLE_SECONDS", threshold)
    url, drop = fresh_pg_url(pg_url)
    app_name = "tt_pool_" + secrets.token_hex(4)
    settings = Settings(db_url=f"{url}&application_name={app_name}", mode="test",
                        admin_token="admin-token-for-tests-0123", secret_key="secret-key-for-tests-0123456789")
    app = create_app(settings, make_study(), models=scripted_pool())
    try:
        def client() -> TestClient:
            return TestClient(app, base_url="http://testserver", raise_server_exceptions=False)

        p = Participant(client(), PROLIFIC_PID="pool1")
        p.start()
        assert p.c.get("/consent").status_code == 200
        assert _kill_backends(pg_url, app_name) >= 1
        r = p.c.get("/consent")
        if survives:
            assert r.status_code == 200, r.text[:300]
            assert p.c.get("/consent").status_code == 200
        else:  # the check above is what saves the request: without it the dead connection answers 500
            assert r.status_code == 500
    finally:
        app.state.ctx.db.dispose()
        drop()
