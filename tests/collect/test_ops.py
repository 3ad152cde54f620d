"""Operating a study: /healthz, /readyz, /metrics, the JSON request log, migrations on deploy, and the
production banner of `thoughttrace serve`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from collect_helpers import TEST_ENV, Participant, scripted_pool
from collect_helpers import study as make_study
from sqlalchemy import text

from thoughttrace.cli.common import UserFacingError
from thoughttrace.collect.db import Database
from thoughttrace.collect.migrate import current_revision, upgrade
from thoughttrace.collect.routes_ops import head_revision
from thoughttrace.llm import get_model
from thoughttrace.llm.errors import AuthenticationError

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}


def test_healthz_and_readyz_answer_with_each_check(app_maker):
    make_client, app, _ = app_maker()
    c = make_client()
    assert c.get("/healthz").json() == {"status": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["study_version"].startswith("test@")
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["migrations"] == {"status": "ok", "revision": head_revision()}
    assert body["checks"]["models"] == {"alpha": {"status": "ok", "detail": "in-process"},
                                        "beta": {"status": "ok", "detail": "in-process"}}


def test_readyz_is_503_when_the_schema_is_behind(app_maker):
    make_client, app, _ = app_maker()
    with app.state.ctx.db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    r = make_client().get("/readyz")
    assert r.status_code == 503
    mig = r.json()["checks"]["migrations"]
    assert mig["status"] == "error" and mig["revision"] == "0003" and mig["head"] == head_revision()


@pytest.fixture(scope="module")
def fake_endpoint():
    proc = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip() if proc.stdout else ""
    yield url
    proc.kill()
    proc.wait(5)


def test_readyz_names_the_model_whose_endpoint_is_down(app_maker, fake_endpoint):
    from collect_helpers import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    pool = {"alpha": get_model("openai-compatible/fake", base_url=fake_endpoint, cache=False),
            "beta": get_model("openai-compatible/fake", base_url=dead, cache=False)}
    make_client, _, _ = app_maker(models=pool)
    r = make_client().get("/readyz")
    assert r.status_code == 503
    models = r.json()["checks"]["models"]
    assert models["alpha"] == {"status": "ok", "servers": {fake_endpoint: "ok"}}
    assert models["beta"]["status"] == "error" and models["beta"]["servers"][dead].startswith("error: Connect")


def test_metrics_need_the_admin_token_and_count_routes_models_and_stages(app_maker):
    make_client, app, _ = app_maker()
    Participant(make_client(), PROLIFIC_PID="m1", STUDY_ID="s", SESSION_ID="a").full_journey(turns=1)
    c = make_client()
    assert c.get("/metrics").status_code == 401
    r = c.get("/metrics", headers=ADMIN)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    body = r.text
    assert 'thoughttrace_http_requests_total{method="POST",route="/api/c/{cid}/messages",status="201"}' in body
    assert 'thoughttrace_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/start"}' in body
    assert 'thoughttrace_model_calls_total{model="alpha"}' in body
    assert 'thoughttrace_model_call_duration_seconds_count{model="beta"}' in body
    assert 'thoughttrace_participants{stage="done"} 1.0' in body
    assert "/c/" + "x" not in body  # route templates, never a participant's raw path


def test_model_errors_are_counted(app_maker):
    def broken(msgs, cfg):
        raise AuthenticationError("the key was revoked")

    pool = {"alpha": get_model("scripted", cache=False, fn=broken), "beta": get_model("scripted", cache=False, fn=broken)}
    make_client, _, _ = app_maker(models=pool)
    p = Participant(make_client(), PROLIFIC_PID="e1", STUDY_ID="s", SESSION_ID="a")
    p.start()
    p.consent()
    p.quiz()
    p.task()
    assert p.send("hello", "a reason").status_code == 201
    assert p.generate().status_code in (502, 504)
    body = make_client().get("/metrics", headers=ADMIN).text
    errors = [ln for ln in body.splitlines() if ln.startswith("thoughttrace_model_errors_total{")]
    assert errors and sum(float(ln.rsplit(" ", 1)[1]) for ln in errors) >= 1


def test_request_log_is_one_json_line_per_request_without_note_text(app_maker, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, every level
    caplog.set_level(logging.INFO, logger="thoughttrace.request")
    make_client, _, _ = app_maker()
    notes = Participant(make_client(), PROLIFIC_PID="log1", STUDY_ID="s", SESSION_ID="a").full_journey(turns=1)
    lines = [r.getMessage() for r in caplog.records if r.name == "thoughttrace.request"]
    assert len(lines) > 20
    records = [json.loads(line) for line in lines]
    assert all(set(r) >= {"request_id", "method", "route", "status", "ms", "path"} for r in records)
    assert len({r["request_id"] for r in records}) == len(records)
    assert any(r["route"] == "/api/c/{cid}/generate" and r["status"] == 200 for r in records)
    # nothing any server-side logger wrote, at any level, holds a note or the Prolific id (the query string is
    # never logged); the test client's own httpx loggers, which print the URLs it requests, are not the server
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name != "thoughttrace.request" for r in server_side)  # other loggers were listened to as well
    text_logged = "\n".join(r.getMessage() for r in server_side)
    assert len(notes) == 4 and all(notes)
    for note in notes:
        assert note not in text_logged
    assert "log1" not in text_logged
    r = make_client().get("/healthz", headers={"X-Request-ID": "proxy-given-id-123"})
    assert r.headers["x-request-id"] == "proxy-given-id-123"


# ------------------------------------------------------------------------------------ migrations on deploy
def _fill_previous_release(url: str) -> None:
    """A database as release 0003 made it, with a participant's conversation, notes, events and audit rows."""
    db = Database(url)
    upgrade(db.engine, "0003")
    now = datetime.now(UTC).replace(tzinfo=None) if url.startswith("sqlite") else datetime.now(UTC)
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO participants (id, public_id, prolific_pid, study_id, session_id, stage, "
                       "task_index, quiz_attempts, survey, design_row, consented_at, created_at, updated_at) VALUES "
                       "(1, 'pubOLD1', 'oldpid', 'st', 'se', 'chat', 0, 1, NULL, 0, :t, :t, :t)"), {"t": now})
        c.execute(text("INSERT INTO conversations (id, public_id, participant_id, task_index, task_statement, "
                       "model_key, model_name, model_provider, model_spec, started_at, deadline_at, created_at, "
                       "updated_at) VALUES (1, 'convOLD1', 1, 0, 'Plan a trip', 'alpha', 'Alpha', 'Lab A', 'scripted', "
                       ":t, :d, :t, :t)"), {"t": now, "d": now + timedelta(minutes=10)})
        c.execute(text("INSERT INTO messages (id, public_id, conversation_id, seq, role, content, client_key, seed, "
                       "latency_ms, created_at) VALUES (1, 'msgOLD1', 1, 0, 'user', 'old question', 'k1', NULL, NULL, :t),"
                       " (2, 'msgOLD2', 1, 1, 'assistant', 'old answer', NULL, 42, 900, :t)"), {"t": now})
        c.execute(text("INSERT INTO thoughts (id, message_id, kind, content, created_at) VALUES "
                       "(1, 1, 'reason', 'OLD-REASON', :t), (2, 2, 'reaction', 'OLD-REACTION', :t)"), {"t": now})
        c.execute(text("INSERT INTO events (participant_id, conversation_id, kind, detail, created_at) VALUES "
                       "(1, 1, 'assigned', 'alpha', :t)"), {"t": now})
        c.execute(text("INSERT INTO admin_actions (action, participant_public_id, detail, created_at) VALUES "
                       "('note', 'pubOLD1', 'kept', :t)"), {"t": now})
        c.execute(text("INSERT INTO login_failures (address, at) VALUES ('10.0.0.1', :t)"), {"t": now})
    db.dispose()


_OLD_TABLES = ("participants", "conversations", "messages", "thoughts", "events", "admin_actions", "login_failures")


def test_starting_on_the_previous_releases_database_upgrades_it_and_loses_nothing(db_url, settings):
    from thoughttrace.collect.app import create_app
    from thoughttrace.collect.export import iter_export

    _fill_previous_release(db_url)
    app = create_app(settings, make_study(), models=scripted_pool())  # the start-up upgrade
    db = app.state.ctx.db
    try:
        assert current_revision(db.engine) == head_revision()
        with db.engine.connect() as c:
            counts = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in _OLD_TABLES}
            assert counts == {"participants": 1, "conversations": 1, "messages": 2, "thoughts": 2, "events": 1,
                              "admin_actions": 1, "login_failures": 1}
            assert c.execute(text("SELECT content FROM thoughts ORDER BY id")).scalars().all() == [
                "OLD-REASON", "OLD-REACTION"]
        with db.session() as s:
            records = list(iter_export(s, include_prolific=True))
        assert len(records) == 1 and records[0]["prolific_pid"] == "oldpid"
        msgs = records[0]["messages"]
        assert [m["content"] for m in msgs] == ["old question", "old answer"]
        assert msgs[0]["reasons"][0]["content"] == "OLD-REASON" and msgs[1]["reactions"][0]["content"] == "OLD-REACTION"
        assert msgs[1]["metadata"]["seed"] == 42
    finally:
        db.dispose()


def test_the_schema_gate_refuses_with_the_command_or_upgrades(tmp_path, monkeypatch):
    from thoughttrace.cli.serve_ops import schema_gate

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    _fill_previous_release(url)
    monkeypatch.setenv("THOUGHTTRACE_AUTO_MIGRATE", "0")
    with pytest.raises(UserFacingError, match=r"at 0003.*thoughttrace db upgrade --db URL"):
        schema_gate(url)
    monkeypatch.delenv("THOUGHTTRACE_AUTO_MIGRATE")
    assert schema_gate(url) == f"schema upgraded 0003 -> {head_revision()}"
    db = Database(url)
    with db.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    db.dispose()
    with pytest.raises(UserFacingError, match="made by a newer release"):
        schema_gate(url)


# ------------------------------------------------------------------------------------ the production command
def _serve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "thoughttrace", "serve", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_serve_in_production_prints_where_and_what_and_refuses_default_secrets(tmp_path):
    db = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    prod = {"THOUGHTTRACE_MODE": "production", "THOUGHTTRACE_ADMIN_TOKEN": TEST_ENV["THOUGHTTRACE_ADMIN_TOKEN"],
            "THOUGHTTRACE_SECRET_KEY": TEST_ENV["THOUGHTTRACE_SECRET_KEY"]}
    r = _serve(["--db", db, "--model", "scripted", "--check", "--port", "8791", "--secure-cookies"], prod)
    assert r.returncode == 0, r.stderr
    assert "study version: " in r.stdout and "listening on:  http://127.0.0.1:8791" in r.stdout
    assert "production mode" in r.stdout and "secure cookies: on" in r.stdout and "trusted proxy: 127.0.0.1" in r.stdout
    assert TEST_ENV["THOUGHTTRACE_ADMIN_TOKEN"] not in r.stdout  # production never prints the token
    r = _serve(["--db", db, "--model", "scripted", "--check"], {**prod, "THOUGHTTRACE_SECRET_KEY": "changeme"})
    assert r.returncode == 1 and "THOUGHTTRACE_SECRET_KEY is missing, a default" in r.stderr
    assert "Traceback" not in r.stderr
