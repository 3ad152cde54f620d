"""Model failures and retries, the task timer, finishing rules, labels."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from collect_helpers import Participant, ndjson

from thoughttrace.collect import flow
from thoughttrace.llm import get_model
from thoughttrace.llm.errors import ServerError


def ready(client, **kw):
    p = Participant(client(), **kw)
    p.start()
    p.consent()
    p.quiz()
    p.task()
    return p


def test_failed_and_timed_out_model_calls_can_be_retried(app_maker):
    calls = {"n": 0}

    def flaky(msgs, cfg):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ServerError("backend down")
        return "recovered answer"

    pool = {"alpha": get_model("scripted", cache=False, fn=flaky, max_retries=0),
            "beta": get_model("scripted", cache=False, fn=flaky, max_retries=0)}
    client, app, _ = app_maker(models=pool, model_timeout_seconds=0.3)
    p = ready(client)
    assert p.send("please help", "need help").status_code == 201
    r = p.generate()
    assert r.status_code == 502 and r.json()["retry"] is True and "saved" in r.json()["error"]
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert state["awaiting_answer"] and state["messages"][0]["note"]["content"] == "need help"
    # timeout: the backend hangs longer than the study's limit
    backend = pool[state_model(app, p)].backend
    backend._delay = 2.0
    r = p.generate()
    assert r.status_code == 504 and r.json()["retry"] is True
    backend._delay = 0.0
    r = p.generate()
    assert r.status_code == 200 and ndjson(r.text)[-1]["content"] == "recovered answer"
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"] and not state["awaiting_answer"]
    with app.state.ctx.db.session() as s:
        from sqlalchemy import select

        from thoughttrace.collect.db import Event
        kinds = [e.kind for e in s.scalars(select(Event))]
    assert kinds.count("model_error") == 2


def state_model(app, p):
    with app.state.ctx.db.session() as s:
        from sqlalchemy import select

        from thoughttrace.collect.db import Conversation
        return s.scalars(select(Conversation).where(Conversation.public_id == p.cid)).one().model_key


def test_timer_ends_the_task(app_maker, monkeypatch):
    monkeypatch.setattr(flow, "TIMER_GRACE", timedelta(0))
    client, app, _ = app_maker(timer_minutes=0.05)  # 3 s: room for the first turn on a loaded machine
    p = ready(client)
    mid = p.turn("hi", "r", "x")
    assert mid
    import time

    from thoughttrace.collect.db import utcnow
    with app.state.ctx.db.session() as s:
        from sqlalchemy import select

        from thoughttrace.collect.db import Conversation
        deadline = s.scalars(select(Conversation).where(Conversation.public_id == p.cid)).one().deadline_at
    time.sleep(max(0.0, (deadline - utcnow()).total_seconds()) + 0.2)
    r = p.send("too late", "r")
    assert r.status_code == 409 and "time is up" in r.json()["error"] and r.json()["redirect"] == "/next"
    r = p.c.get(f"/c/{p.cid}", follow_redirects=True)
    assert str(r.url).endswith(f"/c/{p.cid}/summary")
    assert p.summary().status_code == 200
    assert str(p.c.get("/next", follow_redirects=True).url).endswith("/task")


def test_finishing_rules(app_maker):
    client, _app, _ = app_maker(min_user_messages=1)
    p = ready(client)
    r = p.finish()
    assert r.status_code == 409 and "at least 1" in r.text
    p.send("hi", "r")
    mid = ndjson(p.generate().text)[-1]["message_id"]
    r = p.finish()
    assert r.status_code == 409 and "reaction" in r.text
    p.react(mid, "fine")
    r = p.finish()
    assert str(r.url).endswith("/summary")
    # the finished conversation takes no more messages or notes
    r = p.send("after", "r")
    assert r.status_code == 409


def test_required_labels_from_the_taxonomy(app_maker):
    client, _app, _ = app_maker(labels="required")
    p = ready(client)
    r = p.send("hi", "r")
    assert r.status_code == 422 and "type" in r.json()["error"]
    r = p.send("hi", "r", label="Not a label")
    assert r.status_code == 422 and "Task Motivation & Goal" in r.json()["error"]
    assert p.send("hi", "r", label="Social & Others").status_code == 201
    mid = ndjson(p.generate().text)[-1]["message_id"]
    assert p.react(mid, "good").status_code == 422
    assert p.react(mid, "good", label="Explicit Affirmation").status_code == 201
    admin = client()
    export = admin.get("/admin/export.jsonl", headers={"Authorization": "Bearer admin-token-for-tests-0123"}).text
    rec = json.loads(export)
    assert rec["messages"][0]["reasons"][0]["label"] == "Social & Others"
    assert rec["messages"][1]["reactions"][0]["label"] == "Explicit Affirmation"


def test_optional_reason_when_configured(app_maker):
    client, _app, _ = app_maker(require_reason=False, require_reaction=False)
    p = ready(client)
    assert p.send("hi", "").status_code == 201
    p.generate()
    assert p.send("again", "").status_code == 201  # no reaction owed


def test_balanced_assignment_across_participants(app_maker):
    client, app, _ = app_maker(tasks_per_participant=1)
    for _ in range(5):
        ready(client)
    prog = client().get("/admin/api/progress", headers={"Authorization": "Bearer admin-token-for-tests-0123"}).json()
    counts = sorted(v["conversations"] for v in prog["models"].values())
    assert counts == [2, 3]


@pytest.mark.parametrize("survey,item,err", [
    ({"age": "", "gender": "Woman", "education": "Doctorate", "occupation": "x", "ai_use_frequency": "3",
      "purposes": ["Work"]}, "age", "please answer this question"),
    ({"age": "30", "gender": "Robot", "education": "Doctorate", "occupation": "x", "ai_use_frequency": "3",
      "purposes": ["Work"]}, "gender", "choose one of the listed options"),
    ({"age": "30", "gender": "Woman", "education": "Doctorate", "occupation": "x", "ai_use_frequency": "9",
      "purposes": ["Work"]}, "ai_use_frequency", "a point from 1 to 5"),
    ({"age": "30", "gender": "Woman", "education": "Doctorate", "occupation": "x", "ai_use_frequency": "3"},
     "purposes", "please answer this question"),
])
def test_survey_is_validated(app_maker, survey, item, err):
    client, _app, _ = app_maker(tasks_per_participant=1)
    p = ready(client)
    p.turn("hi", "r", "x")
    p.finish()
    p.summary()
    p.get("/survey")
    r = p.c.post("/survey", data={"csrf_token": p.csrf, **survey})
    assert r.status_code == 422
    problem = r.text.split(f'id="problem-{item}">')[1].split("</p>")[0]
    assert err in problem and r.text.count('class="problem"') == 1
    assert 'value="x"' in r.text and "<option selected>Doctorate</option>" in r.text  # the other answers stay
    assert str(p.c.get("/next", follow_redirects=True).url).endswith("/survey")
