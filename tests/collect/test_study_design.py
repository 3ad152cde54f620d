"""Study design without code: researcher survey items, fixed tasks, the decline / screen-out / time-out
paths with their own completion codes, attention checks and low-effort note flags."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime

import pytest
from collect_helpers import Participant, key

from thoughttrace.collect.study import StudyConfigError, parse_study

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}
CODES = {"completed": "DONE1", "declined": "DECL1", "screened_out": "SCRN1", "timed_out": "TIME1"}
SURVEY = [
    {"id": "age", "type": "number", "question": "Your age", "min": 18, "max": 99},
    {"id": "tools", "type": "multiple", "question": "Tools you use", "options": ["ChatGPT", "Claude", "Gemini"]},
    {"id": "trust", "type": "likert", "question": "I trust AI answers", "scale": 7},
    {"id": "attention", "type": "single", "question": "Please choose 'Blue' here", "options": ["Red", "Blue"],
     "attention_check": "Blue"},
    {"id": "comment", "type": "text", "question": "Anything else?", "required": False, "max_chars": 500},
]
GOOD_SURVEY = {"age": "33", "tools": ["Claude", "ChatGPT"], "trust": "5", "attention": "Blue", "comment": ""}


def journey_to_survey(client, **kw):
    p = Participant(client(), **kw)
    p.start()
    p.consent()
    p.quiz()
    p.task()
    p.turn("hello there", "I want to start planning", "helpful start")
    p.finish()
    p.summary()
    p.get("/survey")
    return p


def test_decline_consent_ends_with_its_own_code(app_maker):
    client, _app, _ = app_maker(completion_codes=CODES)
    p = Participant(client(), PROLIFIC_PID="dec1", STUDY_ID="s", SESSION_ID="x")
    p.start()
    p.get("/consent")
    r = p.form("/consent", {"decision": "decline"})
    assert str(r.url).endswith("/end") and "cc=DECL1" in r.text and "DONE1" not in r.text
    assert str(p.c.get("/task", follow_redirects=True).url).endswith("/end")  # nothing further opens
    assert p.form("/consent", {"agree": "yes"}).status_code == 409
    prog = client().get("/admin/api/progress", headers=ADMIN).json()
    assert prog["stages"]["declined"] == 1


def test_screening_screens_out_with_its_code_and_lets_others_in(app_maker):
    screening = [{"id": "uses_ai", "type": "single", "question": "Do you use AI assistants?",
                  "options": ["Yes", "No"], "screen_out_if": ["No"]}]
    client, _app, _ = app_maker(completion_codes=CODES, screening=screening)
    out = Participant(client())
    out.start()
    out.consent()
    r = out.get("/screening")
    assert "Do you use AI assistants?" in r.text
    r = out.form("/screening", {})
    assert r.status_code == 422 and 'id="problem-uses_ai"' in r.text  # unanswered: marked, not a dead end
    r = out.form("/screening", {"uses_ai": "No"})
    assert str(r.url).endswith("/end") and "cc=SCRN1" in r.text
    ok = Participant(client())
    ok.start()
    ok.consent()
    ok.get("/screening")
    assert str(ok.form("/screening", {"uses_ai": "Yes"}).url).endswith("/tutorial")


def test_study_time_limit_leads_to_the_time_out_code(app_maker, monkeypatch):
    client, _app, _ = app_maker(completion_codes=CODES, study_time_limit_minutes=0.01)
    p = Participant(client())
    p.start()
    p.consent()
    time.sleep(0.8)
    r = p.get("/tutorial")
    assert str(r.url).endswith("/end") and "cc=TIME1" in r.text
    events = client().get("/admin/events.csv", headers=ADMIN).text
    assert "timed_out" in events and "at stage tutorial" in events


def test_fixed_tasks_with_per_task_instructions(app_maker):
    tasks = [{"instructions": "Ask for a recipe.", "statement": "Find a vegetarian dinner recipe"},
             {"instructions": "Now choose any task you like."}]
    client, _app, _ = app_maker(tasks=tasks)
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    page = p.get("/task")
    assert "Ask for a recipe." in page.text and 'id="fixed-task"' in page.text and 'name="task"' not in page.text
    r = p.form("/task", {"task": "ignored"})
    p.cid = str(r.url).split("/c/")[1]
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert state["task"] == "Find a vegetarian dinner recipe"
    p.turn("hi", "start", "ok")
    p.finish()
    p.summary()
    page = p.get("/task")
    assert "Now choose any task you like." in page.text and 'name="task"' in page.text


def test_researcher_survey_items_keep_answers_and_export(app_maker):
    client, _app, _ = app_maker(tasks_per_participant=1, survey_items=SURVEY, completion_codes=CODES)
    p = journey_to_survey(client)
    page = p.get("/survey")
    assert 'id="trust-7"' in page.text and 'id="tools-2"' in page.text and "(optional)" in page.text
    bad = {**GOOD_SURVEY, "age": "12", "trust": ""}
    r = p.c.post("/survey", data={"csrf_token": p.csrf, **bad})
    assert r.status_code == 422
    assert "number from 18 to 99" in r.text.split('id="problem-age">')[1].split("</p>")[0]
    assert "please answer" in r.text.split('id="problem-trust">')[1].split("</p>")[0]
    assert 'value="12"' in r.text and 'value="Claude" id="tools-1" checked' in r.text
    assert "<option selected>Blue</option>" in r.text
    r = p.c.post("/survey", data={"csrf_token": p.csrf, **GOOD_SURVEY}, follow_redirects=True)
    assert str(r.url).endswith("/done") and "cc=DONE1" in r.text
    rec = client().get("/admin/export.jsonl", headers=ADMIN).json()
    assert rec["survey_answers"] == [{"age": 33, "tools": "ChatGPT, Claude", "trust": 5, "attention": "Blue",
                                     "comment": None}]  # an optional item left empty is an explicit null


@pytest.mark.parametrize("data,needle", [
    ({"survey_items": [{"id": "x", "type": "single", "question": "q", "options": ["a"]}]}, "at least 2 options"),
    ({"survey_items": [{"id": "x", "type": "likert", "question": "q", "attention_check": 9}]},
     "attention_check value(s) ['9']"),
    ({"survey_items": [{"id": "x", "type": "text", "question": "q"}, {"id": "x", "type": "text", "question": "r"}]},
     "appear twice"),
    ({"survey_items": [{"id": "x", "type": "slider", "question": "q"}]}, "survey_items.0.type"),
    ({"screening": [{"id": "x", "type": "single", "question": "q", "options": ["a", "b"], "screen_out_if": ["c"]}]},
     "screen_out_if value(s) ['c']"),
    ({"tasks": [{"instructions": "a"}], "tasks_per_participant": 3}, "tasks lists 1 task(s)"),
    ({"completion_codes": {"declined": "bad code"}}, "completion_codes.declined"),
    ({"completion_codes": {"finished": "X"}}, "completion_codes.finished: unknown field"),
    ({"quality": {"repeat_limit": 1}}, "quality.repeat_limit"),
])
def test_bad_study_designs_name_every_error(data, needle):
    with pytest.raises(StudyConfigError) as e:
        parse_study({"models": [{"key": "m", "spec": "scripted"}], **data}, "design.yaml")
    assert needle in str(e.value), str(e.value)


def test_all_errors_are_listed_at_once():
    with pytest.raises(StudyConfigError) as e:
        parse_study({"models": [{"key": "m", "spec": "scripted"}], "timer_minutes": 0, "labels": "x",
                     "completion_codes": {"declined": "bad code"}})
    text = str(e.value)
    assert "timer_minutes" in text and "labels" in text and "completion_codes.declined" in text


def test_quiz_retry_keeps_the_chosen_answers(app_maker):
    client, _app, _ = app_maker()
    p = Participant(client())
    p.start()
    p.consent()
    p.get("/tutorial")
    r = p.form("/tutorial", {"q0": "0", "q1": "1"})
    assert r.status_code == 422
    assert 'id="q0-0" checked' in r.text and 'id="q1-1" checked' in r.text and 'id="q0-1" required' in r.text


def test_quality_flags_in_admin_list_csv_and_filters(app_maker):
    client, _app, _ = app_maker(tasks_per_participant=1, survey_items=SURVEY)
    # a careful participant
    good = journey_to_survey(client, PROLIFIC_PID="good1", STUDY_ID="s", SESSION_ID="a")
    good.c.post("/survey", data={"csrf_token": good.csrf, **GOOD_SURVEY})
    # a careless one: copies the message as the reason, repeats a short reaction, pastes, fails the check
    bad = Participant(client(), PROLIFIC_PID="bad1", STUDY_ID="s", SESSION_ID="b")
    bad.start()
    bad.consent()
    bad.quiz()
    bad.task()
    for msg, reason in [("tell me about Lyon please", "tell me about Lyon please"),
                        ("and about Paris", "because I want to know more about it")]:
        r = bad.api(f"/api/c/{bad.cid}/messages", {"content": msg, "reason": reason, "idempotency_key": key(),
                                                   "reason_typing": {"ms": 300, "keys": 2}})
        assert r.status_code == 201, r.text
        mid = [x for x in bad.generate().text.splitlines() if '"done"' in x][0].split('"message_id": "')[1].split('"')[0]
        assert bad.react(mid, "ok").status_code == 201
    bad.finish()
    bad.summary()
    bad.get("/survey")
    bad.c.post("/survey", data={"csrf_token": bad.csrf, **GOOD_SURVEY, "attention": "Red"})
    admin = client()
    rows = {r["prolific_pid"]: r for r in admin.get("/admin/api/participants", headers=ADMIN).json()["participants"]}
    assert rows["good1"]["flags"] == {}
    assert rows["bad1"]["flags"] == {"attention_check_failed": 1, "short_note": 2, "copied_note": 1,
                                     "repeated_note": 2, "fast_typing": 2}
    # good1 arrived 90 s before this test ran: its minutes_total must read about 1.5 (in minutes, not hours)
    from datetime import timedelta

    from sqlalchemy import select

    from thoughttrace.collect.db import Participant as ParticipantRow

    with _app.state.ctx.db.session() as s:
        row = s.scalars(select(ParticipantRow).where(ParticipantRow.prolific_pid == "good1")).one()
        row.created_at = row.created_at - timedelta(seconds=90)
    table = list(csv.DictReader(io.StringIO(admin.get("/admin/participants.csv", headers=ADMIN).text)))
    by_pid = {r["prolific_pid"]: r for r in table}
    assert 1.5 <= float(by_pid["good1"]["minutes_total"]) < 11
    assert by_pid["bad1"]["flag_attention_check_failed"] == "1" and by_pid["good1"]["flag_attention_check_failed"] == "0"
    assert by_pid["bad1"]["task1_model"] in ("alpha", "beta")
    for row in by_pid.values():  # minutes from arrival to completion, as the CSV's own timestamps say
        took = datetime.fromisoformat(row["completed_at"]) - datetime.fromisoformat(row["created_at"])
        assert float(row["minutes_total"]) == pytest.approx(round(took.total_seconds() / 60, 2), abs=0.0051)
        assert 0 < took.total_seconds() < 600 and float(row["task1_minutes"]) <= float(row["minutes_total"])
    flagged = admin.get("/admin/api/participants?flag=attention_check_failed", headers=ADMIN).json()
    assert [r["prolific_pid"] for r in flagged["participants"]] == ["bad1"]
    assert admin.get("/admin/api/participants?flag=nonsense", headers=ADMIN).status_code == 400
    assert [r["prolific_pid"] for r in admin.get("/admin/api/participants?q=goo", headers=ADMIN).json()[
        "participants"]] == ["good1"]
    assert admin.get("/admin/api/participants?stage=done", headers=ADMIN).json()["total"] == 2
    # the JSONL dataset export carries the same flags on each conversation
    import json
    exported = {json.loads(x)["user_id"]: json.loads(x)["quality_flags"]
                for x in admin.get("/admin/export.jsonl", headers=ADMIN).text.splitlines()}
    assert sorted(exported.values(), key=len) == [{}, rows["bad1"]["flags"]]


def test_participants_list_pages(app_maker):
    client, _app, _ = app_maker()
    for i in range(53):
        client().get(f"/start?PROLIFIC_PID=p{i:02d}&STUDY_ID=s&SESSION_ID=x{i}")
    admin = client()
    admin.post("/admin/login", data={"token": "admin-token-for-tests-0123"})
    first = admin.get("/admin/conversations")
    assert "53 participant(s) match; page 1 of 2" in first.text and first.text.count("<tr data-public-id") == 50
    second = admin.get("/admin/conversations?page=2")
    assert second.text.count("<tr data-public-id") == 3 and ">p52<" in second.text
    assert admin.get("/admin/conversations?page=x").status_code == 400


def _admin_rows(client) -> dict[str, dict]:
    listed = client().get("/admin/api/participants", headers=ADMIN).json()["participants"]
    return {r["prolific_pid"]: r for r in listed}


def _to_first_task(client, pid: str) -> Participant:
    p = Participant(client(), PROLIFIC_PID=pid, STUDY_ID="s", SESSION_ID=pid)
    p.start()
    p.consent()
    assert str(p.quiz().url).endswith("/task")  # the design row is given when the quiz is passed
    return p


def test_a_withdrawn_participant_frees_their_design_row(app_maker):
    client, _app, _ = app_maker()
    _to_first_task(client, "wa")
    _to_first_task(client, "wb")
    rows = _admin_rows(client)
    assert (rows["wa"]["design_row"], rows["wb"]["design_row"]) == (0, 1)  # least-filled, ties to the lowest
    r = client().post(f"/admin/participants/{rows['wb']['public_id']}/withdraw", headers=ADMIN,
                      json={"confirm": "yes"})
    assert r.status_code == 200, r.text
    _to_first_task(client, "wc")
    # wb's row is free again: the next participant gets it (counting wb would give row 2, or row 0)
    assert _admin_rows(client)["wc"]["design_row"] == 1


MC_SCREENING = [{"id": "uses", "type": "multiple", "question": "Which assistants have you used?",
                 "options": ["ChatGPT", "Claude", "None of these"], "screen_out_if": ["None of these"]}]


@pytest.mark.parametrize("ticked, screened_out", [
    (["None of these"], True),
    (["ChatGPT", "None of these"], True),  # a listed answer ticked with others still screens out
    (["ChatGPT", "Claude"], False),
])
def test_a_multiple_choice_screening_item_screens_out_on_any_listed_answer(app_maker, ticked, screened_out):
    client, _app, _ = app_maker(completion_codes=CODES, screening=MC_SCREENING)
    p = Participant(client())
    p.start()
    p.consent()
    p.get("/screening")
    r = p.form("/screening", {"uses": ticked})
    if screened_out:
        assert str(r.url).endswith("/end") and "cc=SCRN1" in r.text
    else:
        assert str(r.url).endswith("/tutorial"), r.text


MC_CHECK = [*SURVEY[:3], {"id": "attention", "type": "multiple", "question": "Tick only 'Blue' and 'Green' here",
                          "options": ["Red", "Blue", "Green"], "attention_check": ["Blue", "Green"]}, SURVEY[4]]


@pytest.mark.parametrize("ticked, failed", [
    (["Blue", "Green"], False), (["Green", "Blue"], False),
    (["Blue", "Green", "Red"], True),  # an extra box ticked: not what was instructed
    (["Blue"], True),
])
def test_a_multiple_choice_attention_check_needs_exactly_the_instructed_boxes(app_maker, ticked, failed):
    client, _app, _ = app_maker(tasks_per_participant=1, survey_items=MC_CHECK)
    p = journey_to_survey(client, PROLIFIC_PID="mc1", STUDY_ID="s", SESSION_ID="a")
    r = p.c.post("/survey", data={"csrf_token": p.csrf, **GOOD_SURVEY, "attention": ticked}, follow_redirects=True)
    assert r.status_code == 200 and str(r.url).endswith("/done"), r.text  # accepted either way
    flags = _admin_rows(client)["mc1"]["flags"]
    assert flags.get("attention_check_failed", 0) == int(failed), flags


def test_an_attention_check_in_the_screening_is_judged(app_maker):
    screening = [{"id": "uses_ai", "type": "single", "question": "Do you use AI assistants?",
                  "options": ["Yes", "No"], "screen_out_if": ["No"]},
                 {"id": "att", "type": "single", "question": "Please choose 'Blue' here", "options": ["Red", "Blue"],
                  "attention_check": "Blue"}]
    client, _app, _ = app_maker(completion_codes=CODES, screening=screening)
    for pid, colour in (("careful", "Blue"), ("careless", "Red")):
        p = Participant(client(), PROLIFIC_PID=pid, STUDY_ID="s", SESSION_ID=pid)
        p.start()
        p.consent()
        p.get("/screening")
        assert str(p.form("/screening", {"uses_ai": "Yes", "att": colour}).url).endswith("/tutorial")
    rows = _admin_rows(client)
    assert rows["careless"]["flags"] == {"attention_check_failed": 1} and rows["careful"]["flags"] == {}
