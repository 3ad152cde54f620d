"""Privacy and bad input: other participants' ids on every route, CSRF, replays, sizes, markup, limits."""

from __future__ import annotations

import json

import pytest
from collect_helpers import Participant, key, ndjson

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}


def two_participants(client):
    a, b = Participant(client()), Participant(client())
    for p in (a, b):
        p.start()
        p.consent()
        p.quiz()
        p.task(f"task of {id(p)}")
    b_mid = b.turn("b's secret message", "b's reason", "b's reaction")
    a_mid = a.turn("a's message", "a's reason", "a's reaction")
    return a, b, a_mid, b_mid


def test_other_participants_ids_on_every_route(app_maker):
    client, app, _ = app_maker()
    a, b, a_mid, b_mid = two_participants(client)
    from thoughttrace.collect import routes_participant

    routes = {(m, r.path) for r in routes_participant.router.routes for m in getattr(r, "methods", ())
              if "{cid}" in r.path}
    probes = {
        ("GET", "/c/{cid}"): lambda cid, mid: a.c.get(f"/c/{cid}"),
        ("GET", "/api/c/{cid}/state"): lambda cid, mid: a.c.get(f"/api/c/{cid}/state"),
        ("POST", "/api/c/{cid}/messages"): lambda cid, mid: a.api(
            f"/api/c/{cid}/messages", {"content": "x", "reason": "y", "idempotency_key": key()}),
        ("POST", "/api/c/{cid}/generate"): lambda cid, mid: a.api(f"/api/c/{cid}/generate"),
        ("POST", "/api/c/{cid}/messages/{mid}/reaction"): lambda cid, mid: a.api(
            f"/api/c/{cid}/messages/{mid}/reaction", {"content": "x", "idempotency_key": key()}),
        ("POST", "/c/{cid}/finish"): lambda cid, mid: a.form(f"/c/{cid}/finish", {}),
        ("GET", "/c/{cid}/summary"): lambda cid, mid: a.c.get(f"/c/{cid}/summary"),
        ("POST", "/c/{cid}/summary"): lambda cid, mid: a.form(f"/c/{cid}/summary", {"summary": "s", "expectation": "e"}),
    }
    assert routes == set(probes), "a route with a conversation id has no ownership probe"
    for route, probe in probes.items():
        for cid, mid in ((b.cid, b_mid), ("does-not-exist", b_mid), (a.cid, b_mid)):
            if cid == a.cid and "{mid}" not in route[1]:
                continue
            r = probe(cid, mid)
            assert r.status_code == 404, (route, cid, r.status_code, r.text[:200])
            assert "b&#39;s" not in r.text and "b's" not in r.text
    # nothing of b's leaked into a's conversation and b's is intact
    state_b = b.c.get(f"/api/c/{b.cid}/state").json()
    assert [m["content"] for m in state_b["messages"]][0] == "b's secret message"
    assert len(state_b["messages"]) == 2 and state_b["open"]
    # no cookie, or a forged cookie: 403 everywhere
    anon = client()
    for url in ("/next", "/consent", "/tutorial", "/task", "/survey", "/done", f"/c/{a.cid}", f"/api/c/{a.cid}/state"):
        assert anon.get(url).status_code == 403, url
    anon.cookies.set("tt_participant", "forged.value")
    assert anon.get(f"/api/c/{a.cid}/state").status_code == 403
    assert anon.post(f"/api/c/{a.cid}/messages", json={}).status_code == 403


def test_csrf_is_required_on_forms_and_json(app_maker):
    client, _app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.get("/consent")
    assert p.c.post("/consent", data={"agree": "yes"}).status_code == 403
    assert p.c.post("/consent", data={"agree": "yes", "csrf_token": "x" * 64}).status_code == 403
    # another participant's token is no good either
    q = Participant(client())
    q.start()
    q.get("/consent")
    assert p.c.post("/consent", data={"agree": "yes", "csrf_token": q.csrf}).status_code == 403
    p.consent()
    p.quiz()
    p.task()
    r = p.api(f"/api/c/{p.cid}/messages", {"content": "hi", "reason": "r", "idempotency_key": key()}, csrf="")
    assert r.status_code == 403
    assert p.c.get(f"/api/c/{p.cid}/state").json()["messages"] == []


def test_replayed_posts_store_nothing_twice(app_maker):
    client, _app, models = app_maker()
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    p.task()
    k = key()
    first = p.send("hello", "because", k=k)
    again = p.send("hello", "because", k=k)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["message"]["id"] == again.json()["message"]["id"]
    g1 = ndjson(p.generate().text)[-1]
    g2 = ndjson(p.generate().text)[-1]  # replayed generate: the stored answer, no second model call
    assert g1["message_id"] == g2["message_id"]
    assert sum(len(m.backend.requests) for m in models.values()) == 1
    rk = key()
    assert p.react(g1["message_id"], "nice", k=rk).status_code == 201
    assert p.react(g1["message_id"], "nice", k=rk).status_code == 200
    assert p.react(g1["message_id"], "other", k=key()).status_code == 409
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert len(state["messages"]) == 2 and state["messages"][1]["note"]["content"] == "nice"


@pytest.mark.parametrize("body,status", [
    ({"content": "", "reason": "r"}, 422),
    ({"content": "   ", "reason": "r"}, 422),
    ({"content": "hi", "reason": ""}, 422),
    ({"content": "x" * 4001, "reason": "r"}, 413),
    ({"content": "hi", "reason": "r" * 2001}, 413),
    ({"content": 5, "reason": "r"}, 422),
    ({"content": "hi", "reason": "r", "idempotency_key": "short"}, 422),
    ({"content": "hi", "reason": "r", "reason_label": "Not a label"}, 200),  # labels are off: ignored
])
def test_bad_messages_are_refused_and_nothing_is_stored(app_maker, body, status):
    client, _app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    p.task()
    body = {"idempotency_key": key(), **body}
    r = p.api(f"/api/c/{p.cid}/messages", body)
    if status == 200:
        assert r.status_code == 201
        return
    assert r.status_code == status and r.json()["error"]
    assert p.c.get(f"/api/c/{p.cid}/state").json()["messages"] == []


def test_malformed_and_oversized_bodies(app_maker):
    client, _app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    p.task()
    url = f"/api/c/{p.cid}/messages"
    h = {"X-CSRF-Token": p.csrf, "Content-Type": "application/json"}
    assert p.c.post(url, content=b"{not json", headers=h).status_code == 400
    assert p.c.post(url, content=b"[1, 2]", headers=h).status_code == 400
    big = json.dumps({"content": "x" * 300_000, "reason": "r", "idempotency_key": key()})
    assert p.c.post(url, content=big, headers=h).status_code == 413
    assert p.c.get(f"/api/c/{p.cid}/state").json()["messages"] == []


def test_sending_twice_without_reaction_or_answer_is_refused(app_maker):
    client, _app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    p.task()
    assert p.send("one", "r1").status_code == 201
    assert p.send("two", "r2").status_code == 409  # not answered yet
    mid = ndjson(p.generate().text)[-1]["message_id"]
    r = p.send("two", "r2")
    assert r.status_code == 409 and "reaction" in r.json()["error"]
    assert p.react(mid, "ok").status_code == 201
    assert p.send("two", "r2").status_code == 201
    # reactions only on assistant messages
    user_mid = p.c.get(f"/api/c/{p.cid}/state").json()["messages"][0]["id"]
    assert p.react(user_mid, "x").status_code == 422


def test_markup_is_stored_raw_and_rendered_escaped(app_maker):
    evil_answer = "Hi <script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)> **bold**"
    from collect_helpers import scripted_pool

    client, _app, _ = app_maker(models=scripted_pool(lambda msgs, cfg: evil_answer))
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    p.task("<b>task</b>")
    payload = '<script>alert("msg")</script><img src=x onerror=alert(1)>'
    mid = p.turn(payload, payload, payload)
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert state["messages"][0]["content"] == payload  # stored as text
    html = state["messages"][1]["html"]
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "<strong>bold</strong>" in html and "&lt;script&gt;" in html
    page = p.c.get(f"/c/{p.cid}").text
    assert "<script>alert" not in page and "<b>task</b>" not in page and "&lt;b&gt;task&lt;/b&gt;" in page
    admin = client()
    admin.post("/admin/login", data={"token": "admin-token-for-tests-0123"})
    view = admin.get(f"/admin/conversations/{p.cid}").text
    assert "<script>alert" not in view and "<img" not in view
    assert "&lt;script&gt;alert(&#34;msg&#34;)&lt;/script&gt;" in view
    export = admin.get("/admin/export.jsonl").text
    assert json.loads(export)["messages"][0]["reasons"][0]["content"] == payload
    assert mid


def test_unknown_stage_steps_are_clear_4xx(app_maker):
    client, _app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.get("/consent")
    r = p.form("/survey", {"age": "3"})
    assert r.status_code == 409 and "not open now" in r.text
    r = p.form("/task", {"task": "x"})
    assert r.status_code == 409
    assert p.c.get("/nope").status_code == 404
    r = p.c.get("/start?PROLIFIC_PID=<script>")
    assert r.status_code == 400 and "<script>" not in r.text


def test_every_route_declares_its_participant_and_csrf_dependency():
    """A new route cannot forget the checks: writes take `Writer` (cookie + CSRF), reads take `Reader`."""
    from thoughttrace.collect import routes_participant
    from thoughttrace.collect.deps import READER_DEPENDENCY, WRITER_DEPENDENCY

    # entry: no participant yet (POST /resume refuses another site's Origin instead: see test_resume.py)
    public = {("GET", "/"), ("GET", "/start"), ("POST", "/resume")}
    for route in routes_participant.router.routes:
        calls = {d.call for d in route.dependant.dependencies}
        for method in route.methods:
            if (method, route.path) in public:
                continue
            if method == "POST":
                assert WRITER_DEPENDENCY in calls, f"POST {route.path} takes no Writer (CSRF) dependency"
            else:
                assert calls & {READER_DEPENDENCY, WRITER_DEPENDENCY}, f"{method} {route.path} has no participant"
