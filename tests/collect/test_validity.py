"""What keeps a study's results valid: fresh seeds per request (stored, exported), balanced and
counterbalanced model assignment, one participant per Prolific id, entry rules, robust input."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest
from collect_helpers import Participant, ndjson
from sqlalchemy import select

from thoughttrace.collect import flow
from thoughttrace.collect.db import Conversation, Message
from thoughttrace.collect.study import parse_study
from thoughttrace.llm import get_model

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}


def ready(client, **kw):
    p = Participant(client(), **kw)
    p.start()
    p.consent()
    p.quiz()
    p.task()
    return p


def test_every_request_gets_a_fresh_seed_that_is_stored_and_exported(app_maker):
    seen: list[int] = []

    def by_seed(msgs, cfg):
        seen.append(cfg.seed)
        return f"sampled with seed {cfg.seed}"

    pool = {k: get_model("scripted", cache=False, fn=by_seed) for k in ("alpha", "beta")}
    client, app, _ = app_maker(models=pool, tasks_per_participant=1)
    answers = []
    for _ in range(3):  # three people type the same first message
        p = ready(client)
        p.send("Write me a haiku about rain", "curious")
        answers.append(ndjson(p.generate().text)[-1]["content"])
    assert len(set(seen)) == 3 and len(set(answers)) == 3, "identical 'samples' for identical prompts"
    with app.state.ctx.db.session() as s:
        stored = [m.seed for m in s.scalars(select(Message).where(Message.role == "assistant").order_by(Message.id))]
        latencies = [m.latency_ms for m in s.scalars(select(Message).where(Message.role == "assistant"))]
    assert stored == seen and all(x is not None and x >= 0 for x in latencies)
    export = [json.loads(x) for x in client().get("/admin/export.jsonl", headers=ADMIN).text.splitlines()]
    assert [cv["messages"][1]["metadata"]["seed"] for cv in export] == seen
    assert all(cv["messages"][1]["metadata"]["model_key"] == cv["model_key"] for cv in export)


@pytest.mark.parametrize("n_models,tasks,people", [(2, 2, 7), (3, 2, 10), (3, 3, 8)])
def test_assignment_is_balanced_counterbalanced_and_never_repeats(settings, n_models, tasks, people):
    from fastapi.testclient import TestClient

    from thoughttrace.collect.app import create_app

    models = [{"key": k, "spec": "scripted"} for k in "abc"[:n_models]]
    pool = {m["key"]: get_model("scripted", cache=False, default="ok") for m in models}
    app = create_app(settings, parse_study({"models": models, "tasks_per_participant": tasks}), models=pool)

    def client():
        return TestClient(app, base_url="http://testserver")
    for _ in range(people):
        p = ready(client)
        for t in range(tasks):
            p.turn("hi", "because", "fine")
            p.finish()
            p.summary()
            if t + 1 < tasks:
                p.task(f"task {t + 1}")
    with app.state.ctx.db.session() as s:
        convs = s.scalars(select(Conversation)).all()
    by_person: dict[int, list[str]] = {}
    for c in sorted(convs, key=lambda c: (c.participant_id, c.task_index)):
        by_person.setdefault(c.participant_id, []).append(c.model_key)
    assert all(len(set(seq)) == len(seq) for seq in by_person.values()), by_person  # never the same model twice
    cells = Counter((c.model_key, c.task_index) for c in convs)
    all_cells = [cells.get((m["key"], k), 0) for m in models for k in range(tasks)]
    assert max(all_cells) - min(all_cells) <= 1, cells
    firsts = Counter(seq[0] for seq in by_person.values())
    assert max(firsts.values()) - min(firsts.get(m["key"], 0) for m in models) <= 1  # order counterbalanced
    app.state.ctx.db.dispose()


def test_model_sequence_is_a_latin_square():
    study = parse_study({"models": [{"key": k, "spec": "scripted"} for k in "abcd"], "tasks_per_participant": 4})
    rows = [flow.model_sequence(study, r) for r in range(4)]
    assert all(sorted(r) == list("abcd") for r in rows)
    assert all(sorted(col) == list("abcd") for col in zip(*rows, strict=True))


def test_one_participant_per_prolific_id(app_maker):
    client, app, _ = app_maker()
    device = client()  # the same browser (its cookie) with new SESSION_IDs; a new browser needs the resume code
    for session in ("s1", "s2", "", "s1"):
        r = device.get(f"/start?PROLIFIC_PID=same&STUDY_ID=st&SESSION_ID={session}", follow_redirects=True)
        assert r.status_code == 200
    assert client().get("/start?PROLIFIC_PID=same&STUDY_ID=st&SESSION_ID=s9").status_code == 403
    prog = client().get("/admin/api/progress", headers=ADMIN).json()
    assert prog["participants"] == 1
    pay = client().get("/admin/payments.csv", headers=ADMIN).text.splitlines()
    assert len(pay) == 2 and pay[1].startswith("same,st,s1,consent")
    events = client().get("/admin/events.csv", headers=ADMIN).text
    assert events.count("session_change") == 2  # s1 -> s2 -> s1 (a missing SESSION_ID changes nothing)


def test_anonymous_entry_can_be_switched_off(app_maker):
    client, _app, _ = app_maker(anonymous_entry=False)
    c = client()
    assert 'id="start-anonymous"' not in c.get("/").text
    r = c.get("/start")
    assert r.status_code == 403 and "Prolific link" in r.text
    assert c.get("/start?PROLIFIC_PID=abc&STUDY_ID=s&SESSION_ID=x", follow_redirects=True).status_code == 200
    client2, _app2, _ = app_maker()
    assert 'id="start-anonymous"' in client2().get("/").text


def test_deeply_nested_json_is_a_400(app_maker):
    client, _app, _ = app_maker()
    p = ready(client)
    h = {"X-CSRF-Token": p.csrf, "Content-Type": "application/json"}
    deep = b"[" * 100_000 + b"]" * 100_000
    for url in (f"/api/c/{p.cid}/messages", f"/api/c/{p.cid}/messages/x/reaction"):
        r = p.c.post(url, content=deep, headers=h)
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
    obj = b'{"a":' * 20_000 + b"1" + b"}" * 20_000  # under the body limit, far past the recursion limit
    assert p.c.post(f"/api/c/{p.cid}/messages", content=obj, headers=h).status_code == 400


def test_admin_login_is_throttled(app_maker):
    client, _app, _ = app_maker()
    c = client()
    for _ in range(5):
        assert c.post("/admin/login", data={"token": "guess"}).status_code == 401
    r = c.post("/admin/login", data={"token": "admin-token-for-tests-0123"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "too many failed logins" in r.text
    # bearer tokens share the throttle: this address is locked out for them too, the right token included
    assert c.get("/admin/api/progress", headers={"Authorization": "Bearer nope"}).status_code == 429
    assert c.get("/admin/api/progress", headers=ADMIN).status_code == 429


def test_throttle_window_ages_out(app_maker):
    from datetime import timedelta

    from thoughttrace.collect.db import utcnow
    from thoughttrace.collect.throttle import LoginThrottle

    _client, app, _ = app_maker()
    t, t0 = LoginThrottle(limit=2, window=10), utcnow()
    with app.state.ctx.db.session() as s:
        t.failed(s, "ip", now=t0)
        t.failed(s, "ip", now=t0 + timedelta(seconds=1))
    with app.state.ctx.db.session() as s:
        assert t.retry_after(s, "ip", now=t0 + timedelta(seconds=2)) == 9
        assert t.retry_after(s, "other", now=t0 + timedelta(seconds=2)) == 0
        assert t.retry_after(s, "ip", now=t0 + timedelta(seconds=10.5)) == 0
        t.failed(s, "ip", now=t0 + timedelta(seconds=20))  # forgets the expired ones
        assert t.count(s) == 1


def test_login_throttle_is_shared_by_two_app_instances_on_one_database(app_maker):
    """Two workers (two apps, one database): failures on either count together, and either refuses."""
    client_a, _app_a, _ = app_maker()
    client_b, _app_b, _ = app_maker()
    a, b = client_a(), client_b()
    for c in (a, b, a, b, a):  # 5 failures split 3 + 2: neither worker alone reached the limit
        assert c.post("/admin/login", data={"token": "guess"}).status_code == 401
    for c in (a, b):
        r = c.post("/admin/login", data={"token": "admin-token-for-tests-0123"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0, r.text


def test_a_right_login_clears_the_failures_for_every_worker(app_maker):
    client_a, _app_a, _ = app_maker()
    client_b, app_b, _ = app_maker()
    a, b = client_a(), client_b()
    for _ in range(4):
        assert a.post("/admin/login", data={"token": "guess"}).status_code == 401
    assert b.post("/admin/login", data={"token": "admin-token-for-tests-0123"}, follow_redirects=False).status_code == 303
    with app_b.state.ctx.db.session() as s:
        assert app_b.state.ctx.login_throttle.count(s) == 0
    for _ in range(4):  # a fresh allowance of failures
        assert a.post("/admin/login", data={"token": "guess"}).status_code == 401


def test_typing_timings_are_checked_and_stored(app_maker):
    client, app, _ = app_maker()
    p = ready(client)
    k = {"content": "hi", "reason": "a reason", "idempotency_key": "k" * 16}
    r = p.api(f"/api/c/{p.cid}/messages", {**k, "reason_typing": {"ms": "fast"}})
    assert r.status_code == 422 and "typing.ms" in r.json()["error"]
    r = p.api(f"/api/c/{p.cid}/messages", {**k, "reason_typing": {"ms": 4000, "keys": 9}})
    assert r.status_code == 201
    from thoughttrace.collect.db import Thought
    with app.state.ctx.db.session() as s:
        t = s.scalars(select(Thought)).one()
        assert (t.typing_ms, t.keystrokes) == (4000, 9)


def test_design_rows_spread_over_pool_combinations():
    """The cyclic square gives each ordered neighbour pair of models equally often over M rows."""
    study = parse_study({"models": [{"key": k, "spec": "scripted"} for k in "ab"], "tasks_per_participant": 2})
    seqs = [tuple(flow.model_sequence(study, r)) for r in range(2)]
    assert set(seqs) == set(itertools.permutations("ab"))
