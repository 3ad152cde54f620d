"""Quotas and study states: a full design row or model is not assigned any more; a paused or closed
study refuses new entries with a clear page while people already in it finish (admin page and CLI)."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner
from collect_helpers import Participant
from sqlalchemy import select

from thoughttrace.cli.main import cli
from thoughttrace.collect.db import Conversation
from thoughttrace.collect.study import StudyConfigError, parse_study

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}


def through_quiz(client, **kw) -> Participant:
    p = Participant(client(), **kw)
    p.start()
    p.consent()
    p.quiz()
    return p


def finish_all(p: Participant, tasks: int = 2) -> None:
    for t in range(tasks):
        p.task(f"task {t}")
        p.turn("hi", "because", "fine")
        p.finish()
        p.summary()
    assert p.survey().status_code == 200


def test_per_row_quota_then_full_page_with_its_code(app_maker):
    client, app, _ = app_maker(quotas={"per_design_row": 1}, completion_codes={"full": "FULL01"})
    late = Participant(client())
    late.start()  # entered while places were left ...
    late.consent()
    people = [through_quiz(client) for _ in range(2)]  # 2 models x 2 positions: 2 Williams rows, now full
    late.quiz()  # ... and passes the quiz after they filled
    page = late.get("/next")
    assert page.url.path == "/end" and "All places in this study were taken" in page.text
    assert 'data-outcome="full"' in page.text and "FULL01" in page.text  # paid for their time
    assert late.get("/task").url.path == "/end"  # no task, no model for them
    with app.state.ctx.db.session() as s:
        assert s.scalars(select(Conversation)).all() == []
    # rows full: a brand-new entry is refused at once, with a clear page, not a 500
    newcomer = Participant(client())
    r = newcomer.start()
    assert r.status_code == 410 and "closed" in r.text
    # the two who hold rows still finish
    for p in people:
        finish_all(p)
        assert p.get("/done").url.path == "/done"


def test_model_quota_stops_assigning_that_model(app_maker):
    client, app, _ = app_maker(tasks_per_participant=1, quotas={"models": {"alpha": 2}})
    for _ in range(8):
        p = through_quiz(client)
        p.task("x")
    with app.state.ctx.db.session() as s:
        counts = Counter(c.model_key for c in s.scalars(select(Conversation)))
    assert counts == {"alpha": 2, "beta": 6}, counts  # alpha stopped at its quota, beta took the rest


def test_total_quota(app_maker):
    client, app, _ = app_maker(quotas={"total": 3})
    states = [through_quiz(client).get("/next").url.path for _ in range(3)]
    assert states == ["/task"] * 3
    assert Participant(client()).start().status_code == 410


def test_quotas_are_checked_when_the_study_loads():
    with pytest.raises(StudyConfigError, match="quotas.models names model key"):
        parse_study({"models": [{"key": "a", "spec": "scripted"}], "quotas": {"models": {"zz": 3}}})
    with pytest.raises(StudyConfigError, match="at least 1"):
        parse_study({"models": [{"key": "a", "spec": "scripted"}], "quotas": {"models": {"a": 0}}})


def test_pause_from_the_admin_page_refuses_new_entries_and_lets_others_finish(app_maker):
    client, app, _ = app_maker()
    inside = through_quiz(client)
    admin = client()
    r = admin.post("/admin/login", data={"token": "admin-token-for-tests-0123"}, follow_redirects=True)
    page = admin.get("/admin").text
    assert 'data-state="open"' in page and 'id="state-paused"' in page
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert admin.post("/admin/study/state", data={"csrf_token": "forged", "state": "paused"}).status_code == 403
    r = admin.post("/admin/study/state", data={"csrf_token": csrf, "state": "paused"}, follow_redirects=True)
    assert r.status_code == 200 and 'data-state="paused"' in r.text
    newcomer = Participant(client(), PROLIFIC_PID="new1", STUDY_ID="s", SESSION_ID="x")
    r = newcomer.start()
    assert r.status_code == 503 and "paused" in r.text and "try again later" in r.text
    finish_all(inside)  # mid-study: goes on to the end
    assert inside.get("/done").url.path == "/done"
    assert admin.post("/admin/study/state", headers=ADMIN, json={"state": "sleeping"}).status_code == 400
    assert admin.post("/admin/study/state", headers=ADMIN, json={"state": "open"}).json() == {"state": "open"}
    assert newcomer.start().url.path == "/consent"  # open again: in
    events = admin.get("/admin/events.csv", headers=ADMIN).text
    assert "study_paused" in events and "study_open" in events  # audited


def test_close_and_open_from_the_command_line(app_maker, settings):
    client, app, _ = app_maker()
    inside = through_quiz(client)
    runner = CliRunner()
    r = runner.invoke(cli, ["study", "close", "--db", settings.db_url, "--note", "enough data"])
    assert r.exit_code == 0, r.output
    assert "open -> closed" in r.output
    r = Participant(client()).start()
    assert r.status_code == 410 and "closed" in r.text
    finish_all(inside)
    status = runner.invoke(cli, ["study", "status", "--db", settings.db_url])
    assert status.exit_code == 0 and "state: closed (enough data)" in status.output and "version 1:" in status.output
    assert runner.invoke(cli, ["study", "open", "--db", settings.db_url]).exit_code == 0
    assert Participant(client()).start().url.path == "/consent"
    bad = runner.invoke(cli, ["study", "pause"], env={"THOUGHTTRACE_DB_URL": ""})
    assert bad.exit_code != 0 and "pass --db URL" in bad.output and "Traceback" not in bad.output
