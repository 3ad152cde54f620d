"""A whole participant journey through the real app and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from collect_helpers import Participant

from thoughttrace.data import Conversation

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}


def test_full_journey_exports_valid_release_schema(app_maker):
    client, _app, models = app_maker()
    c = client()
    p = Participant(c, PROLIFIC_PID="pid123", STUDY_ID="study1", SESSION_ID="sess1")
    notes = p.full_journey(turns=2, tasks=2)
    done = c.get("/done")
    assert "CODE123" in done.text

    r = c.get("/admin/export.jsonl", headers=ADMIN)
    assert r.status_code == 200
    lines = [json.loads(x) for x in r.text.splitlines()]
    convs = [Conversation.model_validate(x) for x in lines]
    assert len(convs) == 2
    assert {cv.model_name for cv in convs} == {"Alpha", "Beta"}  # balanced assignment
    for cv in convs:
        assert [m.type for m in cv.messages] == ["user", "assistant"] * 2
        assert all(m.timestamp for m in cv.messages)
        assert all(len(m.thoughts) == 1 and m.thoughts[0].timestamp for m in cv.messages)
        assert cv.task_summary == "I planned a trip" and cv.task_expectation == "Good ideas"
        assert cv.survey_answers == [{"age": "34", "gender": "Woman", "education": "Master's degree",
                                      "occupation": "Nurse", "ai_use_frequency": 4, "purposes": "Work, Writing"}]
        assert cv.id.startswith(cv.user_id + "_task")
    exported = [t.content for cv in convs for m in cv.messages for t in m.thoughts]
    assert sorted(exported) == sorted(notes)
    assert "pid123" not in r.text and "sess1" not in r.text  # no Prolific ids unless asked
    with_ids = c.get("/admin/export.jsonl?include_prolific=1", headers=ADMIN)
    assert '"prolific_pid": "pid123"' in with_ids.text

    # the model never saw a note: every request the backends received, over the whole journey
    seen = json.dumps([req for m in models.values() for req in m.backend.requests])
    assert seen.count('"role": "user"') > 0
    for note in notes:
        assert note not in seen
    assert "SYS-ALPHA" in seen and "SYS-BETA" in seen


def test_reload_resumes_where_the_participant_was(app_maker):
    client, _app, _ = app_maker()
    c = client()
    p = Participant(c)
    p.start()
    p.consent()
    assert str(c.get("/next", follow_redirects=True).url).endswith("/tutorial")
    p.quiz()
    p.task("Write a poem")
    p.send("hello", "greeting")
    # a new tab / coming back: /next leads to the chat, whose state shows the unanswered message
    r = c.get("/next", follow_redirects=True)
    assert f"/c/{p.cid}" in str(r.url)
    state = c.get(f"/api/c/{p.cid}/state").json()
    assert state["awaiting_answer"] is True and state["messages"][0]["note"]["content"] == "greeting"
    # prolific participants resume by PID + SESSION_ID from a fresh browser
    c2 = client()
    q = Participant(c2, PROLIFIC_PID="p9", STUDY_ID="s", SESSION_ID="x1")
    q.start()
    q.consent()
    c3 = client()
    r = c3.get("/start?PROLIFIC_PID=p9&STUDY_ID=s&SESSION_ID=x1", follow_redirects=True)
    assert str(r.url).endswith("/tutorial")
    # a second SESSION_ID of the same Prolific id from the first browser resumes the same person (logged),
    # never a new participant (from a new browser it needs the resume code: see test_resume.py)
    r = c2.get("/start?PROLIFIC_PID=p9&STUDY_ID=s&SESSION_ID=other", follow_redirects=True)
    assert str(r.url).endswith("/tutorial")
    from sqlalchemy import func, select

    from thoughttrace.collect.db import Event
    from thoughttrace.collect.db import Participant as Row
    with _app.state.ctx.db.session() as s:
        rows = s.scalars(select(Row).where(Row.prolific_pid == "p9")).all()
        assert len(rows) == 1 and rows[0].session_id == "other"
        changes = s.scalars(select(Event.detail).where(Event.kind == "session_change")).all()
        assert changes == ["SESSION_ID x1 -> other"]
        assert s.scalar(select(func.count()).select_from(Row)) == 2


def test_quiz_must_be_passed(app_maker):
    client, _app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.consent()
    r = p.quiz({"q0": "0", "q1": "1"})
    assert r.status_code == 422 and "not right yet" in r.text
    assert str(p.c.get("/task", follow_redirects=True).url).endswith("/tutorial")
    assert p.quiz().status_code == 200
    assert str(p.c.get("/next", follow_redirects=True).url).endswith("/task")


def test_admin_progress_payments_withdraw(app_maker):
    client, _app, _ = app_maker()
    a = Participant(client(), PROLIFIC_PID="aaa", STUDY_ID="st", SESSION_ID="s1")
    a.full_journey(turns=1, tasks=2)
    b = Participant(client(), PROLIFIC_PID="bbb", STUDY_ID="st", SESSION_ID="s2")
    b.start()
    b.consent()
    admin = client()
    assert admin.get("/admin").status_code == 401
    assert admin.get("/admin", headers={"Authorization": "Bearer wrong"}).status_code == 401
    prog = admin.get("/admin/api/progress", headers=ADMIN).json()
    assert prog["participants"] == 2 and prog["stages"]["done"] == 1 and prog["stages"]["tutorial"] == 1
    assert prog["totals"] == {"conversations": 2, "messages": 4, "reasons": 2, "reactions": 2}
    pay = admin.get("/admin/payments.csv", headers=ADMIN).text.splitlines()
    assert pay[0].startswith("prolific_pid") and pay[1].startswith("aaa,st,s1,done,1") and pay[2].startswith("bbb")
    # login with the token, view pages, withdraw through the form (CSRF-protected)
    r = admin.post("/admin/login", data={"token": "admin-token-for-tests-0123"}, follow_redirects=True)
    assert r.status_code == 200 and "Per model" in r.text
    page = admin.get("/admin/conversations")
    assert "user1" in page.text
    conv_link = page.text.split('href="/admin/conversations/')[1].split('"')[0]
    view = admin.get(f"/admin/conversations/{conv_link}")
    assert "reason:" in view.text and "reaction:" in view.text
    pid_a = page.text.split('href="/admin/participants/')[1].split("/withdraw")[0]
    # withdrawal is behind a confirmation page that names the Prolific id
    confirm = admin.get(f"/admin/participants/{pid_a}/withdraw")
    assert confirm.status_code == 200 and '<td id="withdraw-pid">aaa</td>' in confirm.text
    csrf = confirm.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert admin.post(f"/admin/participants/{pid_a}/withdraw",
                      data={"csrf_token": "forged", "confirm": "yes"}).status_code == 403
    r = admin.post(f"/admin/participants/{pid_a}/withdraw", data={"csrf_token": csrf})  # no confirmation
    assert r.status_code == 409 and admin.get("/admin/api/progress", headers=ADMIN).json()["totals"]["messages"] == 4
    r = admin.post(f"/admin/participants/{pid_a}/withdraw", data={"csrf_token": csrf, "confirm": "yes",
                                                                  "reason": "asked by email"}, follow_redirects=True)
    assert r.status_code == 200
    prog = admin.get("/admin/api/progress", headers=ADMIN).json()
    assert prog["participants"] == 1 and prog["totals"]["messages"] == 0 and prog["stages"]["withdrawn"] == 1
    assert admin.get("/admin/export.jsonl", headers=ADMIN).text == ""
    # the payment row is kept and marked, not silently deleted; the audit log says what happened
    pay = admin.get("/admin/payments.csv", headers=ADMIN).text.splitlines()
    # ... and `completed` stays 1: they finished before withdrawing (`withdrawn` says the rest)
    assert pay[1].startswith("aaa,st,s1,withdrawn,1,") and pay[1].split(",")[6] == "1"
    events = admin.get("/admin/events.csv", headers=ADMIN).text
    assert "withdraw" in events and "asked by email" in events and "deleted 2 conversation(s), 4 message(s)" in events
    # the withdrawn participant's cookie no longer opens anything, nor does their Prolific link
    assert a.c.get("/next").status_code == 403
    assert client().get("/start?PROLIFIC_PID=aaa&STUDY_ID=st&SESSION_ID=s1").status_code == 403
    assert admin.post("/admin/participants/nope/withdraw", headers=ADMIN, json={"confirm": "yes"}).status_code == 404
    assert admin.post(f"/admin/participants/{pid_a}/withdraw", headers=ADMIN, json={"confirm": "yes"}).status_code == 404
    # logout ends the admin session
    assert admin.post("/admin/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert admin.get("/admin").status_code == 401
