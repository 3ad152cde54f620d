"""The Prolific client, CLI and admin page against a loopback stand-in of Prolific's API."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from collect_helpers import Participant
from prolific_standin import TOKEN, ProlificStandIn

from thoughttrace.cli.main import cli
from thoughttrace.collect.prolific import ProlificClient, ProlificError

MESSAGE = ("Your submission did not follow the instructions: the notes were copied from the messages instead of "
           "saying why you sent them.")



def test_dry_run_by_default_sends_nothing(standin):
    c = ProlificClient.from_env()
    out = c.approve("sub000")
    assert out["dry_run"] and out["would_send"]["body"] == {"action": "APPROVE"}
    c.reject("sub001", MESSAGE, "FAILED_INSTRUCTIONS")
    c.bonus("STUDY1", [("pid000", "1.50")])
    assert standin.requests == [] and standin.submissions["sub000"]["status"] == "AWAITING REVIEW"
    assert [a.action for a in c.actions] == ["approve", "reject", "bonus_setup", "bonus_pay"]
    assert all(a.dry_run for a in c.actions)


def test_real_calls_change_the_stand_in(standin):
    c = ProlificClient.from_env(dry_run=False)
    subs = c.submissions("STUDY1")  # paged: 5 submissions over 3 pages
    assert [s["id"] for s in subs] == [f"sub{i:03d}" for i in range(5)]
    assert c.approve("sub000")["status"] == "APPROVED"
    with pytest.raises(ProlificError, match="HTTP 400.*Cannot transition a submission from APPROVED"):
        c.approve("sub000")  # a decided submission stays decided: the ledger never sends this twice
    assert c.reject("sub001", MESSAGE, "LOW_EFFORT")["status"] == "REJECTED"
    c.bulk_approve("STUDY1", ["sub002", "sub003"])
    assert [standin.submissions[f"sub{i:03d}"]["status"] for i in range(4)] == ["APPROVED", "REJECTED", "APPROVED",
                                                                               "APPROVED"]
    out = c.bonus("STUDY1", [("pid000", "1.50"), ("pid004", 2)])
    assert out["setup"]["amount"] == 350 and standin.paid == [out["setup"]["id"]]
    body = json.loads(standin.requests[-2][2])
    assert body == {"study_id": "STUDY1", "csv_bonuses": "pid000,1.50\npid004,2.00\n"}
    assert all(a.status is not None and not a.dry_run for a in c.actions)


#: `rejection_category` of POST /submissions/{id}/transition/ as Prolific documents it (API reference
#: "Approve or reject a submission": required with action REJECT, message >= 100 characters; the values
#: as Prolific's own CLI, prolific-oss/cli cmd/submission/transition.go, lists them)
DOCUMENTED_CATEGORIES = ("TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK",
                         "LOW_EFFORT", "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER")


def test_every_documented_rejection_category_is_sent_and_no_other(monkeypatch):
    from prolific_standin import CATEGORIES

    from thoughttrace.collect.prolific import REJECTION_CATEGORIES

    assert REJECTION_CATEGORIES == DOCUMENTED_CATEGORIES
    assert set(DOCUMENTED_CATEGORIES) == CATEGORIES
    with ProlificStandIn(participants=len(DOCUMENTED_CATEGORIES)) as s:
        monkeypatch.setenv("PROLIFIC_TOKEN", TOKEN)
        monkeypatch.setenv("PROLIFIC_API_URL", s.base)
        c = ProlificClient.from_env(dry_run=False)
        for i, category in enumerate(DOCUMENTED_CATEGORIES):
            assert c.reject(f"sub{i:03d}", MESSAGE, category)["status"] == "REJECTED"
        sent = [json.loads(body)["rejection_category"] for _m, _p, body in s.requests]
        assert sent == list(DOCUMENTED_CATEGORIES)
        # a plausible but undocumented name (a third-party guide calls FAILED_CHECK "FAILED_ATTENTION") is
        # refused before anything is sent, naming the documented ones
        with pytest.raises(ProlificError, match="unknown rejection category 'FAILED_ATTENTION'.*FAILED_CHECK"):
            c.reject("sub000", MESSAGE, "FAILED_ATTENTION")
        assert len(s.requests) == len(DOCUMENTED_CATEGORIES)


def test_error_answers_are_clear(standin, monkeypatch):
    c = ProlificClient.from_env(dry_run=False)
    with pytest.raises(ProlificError, match="HTTP 404.*No Submission.*check the study/submission id"):
        c.approve("nope")
    with pytest.raises(ProlificError, match="Cannot transition a submission from REJECTED"):
        c.reject("sub001", MESSAGE, "LOW_EFFORT") and c.approve("sub001")
    with pytest.raises(ProlificError, match="Invalid participant or submission ids"):
        c.bonus("STUDY1", [("stranger", "1.00")])
    assert standin.paid == []  # a refused set-up pays nothing
    # refused before sending: bad category, short message, a bonus typo
    n = len(standin.requests)
    with pytest.raises(ProlificError, match="unknown rejection category 'RUDE'"):
        c.reject("sub002", MESSAGE, "RUDE")
    with pytest.raises(ProlificError, match="at least 100 characters"):
        c.reject("sub002", "too short", "OTHER")
    with pytest.raises(ProlificError, match="at most 100"):
        c.bonus("STUDY1", [("pid000", "150.00")])  # too much, and nothing else wrong with it
    with pytest.raises(ProlificError, match="2 decimals"):
        c.bonus("STUDY1", [("pid000", "1.505")])  # a third decimal, and nothing else wrong with it
    assert len(standin.requests) == n
    monkeypatch.setenv("PROLIFIC_TOKEN", "wrong")
    with pytest.raises(ProlificError, match="HTTP 401.*Invalid token.*check PROLIFIC_TOKEN"):
        ProlificClient.from_env(dry_run=False).approve("sub002")
    monkeypatch.delenv("PROLIFIC_TOKEN")
    with pytest.raises(ProlificError, match="PROLIFIC_TOKEN is not set"):
        ProlificClient.from_env(dry_run=False)


@pytest.mark.parametrize("amount", ["1.505", "0.999", "10.001", 1.505])
def test_a_bonus_with_more_than_two_decimals_is_refused_not_rounded(standin, amount):
    c = ProlificClient.from_env()
    with pytest.raises(ProlificError, match="2 decimals"):
        c.set_up_bonuses("STUDY1", [("pid000", amount)])
    assert c.actions == [] and standin.requests == []  # nothing described, nothing sent


@pytest.mark.parametrize("amount, sent", [("1.5", "1.50"), ("2", "2.00"), ("0.01", "0.01"), ("100.00", "100.00")])
def test_a_bonus_amount_is_sent_with_two_decimals(standin, amount, sent):
    out = ProlificClient.from_env().set_up_bonuses("STUDY1", [("pid000", amount)])
    assert out["would_send"]["body"]["csv_bonuses"] == f"pid000,{sent}\n"


@pytest.mark.parametrize("message", [" " * 100, "too short" + " " * 100, " " * 60 + "too short" + " " * 60,
                                     "x" * 99 + "\n" * 5])
def test_padding_does_not_count_towards_a_rejection_messages_length(standin, message):
    c = ProlificClient.from_env()
    with pytest.raises(ProlificError, match="at least 100 characters"):
        c.reject("sub002", message, "OTHER")
    assert c.actions == []
    c.reject("sub002", "x" * 100, "OTHER")  # exactly the minimum passes
    assert [a.action for a in c.actions] == ["reject"]


def test_cli_dry_run_execute_and_audit_log(standin, tmp_path):
    db = f"sqlite:///{tmp_path / 'study.sqlite'}"
    r = CliRunner()
    out = r.invoke(cli, ["prolific", "approve", "sub000", "--db", db])
    assert out.exit_code == 0, out.output
    assert "DRY RUN (not sent): POST /submissions/sub000/transition/" in out.output and standin.requests == []
    out = r.invoke(cli, ["prolific", "approve", "sub000", "--execute", "--db", db])
    assert out.exit_code == 0 and "sent -> HTTP 200" in out.output
    assert standin.submissions["sub000"]["status"] == "APPROVED"
    out = r.invoke(cli, ["prolific", "reject", "sub001", "--category", "BAD", "--message", MESSAGE, "--execute"])
    assert out.exit_code == 1 and "unknown rejection category" in out.output and "Traceback" not in out.output
    out = r.invoke(cli, ["prolific", "bonus", "--study", "STUDY1", "--pay", "pid003", "0.75", "--execute", "--db", db,
                         "--json"])
    assert out.exit_code == 0, out.output
    assert [o["state"] for o in json.loads(out.output)["outcomes"]] == ["sent"] and len(standin.paid) == 1
    assert standin.bonuses[standin.paid[0]]["amount"] == 75
    out = r.invoke(cli, ["prolific", "submissions", "--study", "STUDY1"])
    assert out.exit_code == 0 and out.output.count("\t") == 10
    from sqlalchemy import select

    from thoughttrace.collect.db import AdminAction, Database
    d = Database(db)
    with d.session() as s:
        acts = [(a.action, json.loads(a.detail)["dry_run"]) for a in s.scalars(select(AdminAction))]
    d.dispose()
    assert acts == [("prolific_approve", True), ("prolific_approve", False), ("prolific_bonus_setup", False),
                    ("prolific_bonus_pay", False)]


def test_cli_approve_completed_from_the_study_database(standin, app_maker, settings):
    client, _app, _ = app_maker(tasks_per_participant=1)
    done = Participant(client(), PROLIFIC_PID="pid000", STUDY_ID="STUDY1", SESSION_ID="sub000")
    done.full_journey(turns=1, tasks=1)
    halfway = Participant(client(), PROLIFIC_PID="pid001", STUDY_ID="STUDY1", SESSION_ID="sub001")
    halfway.start()
    out = CliRunner().invoke(cli, ["prolific", "approve", "--completed", "--db", settings.db_url, "--execute"])
    assert out.exit_code == 0, out.output
    assert standin.submissions["sub000"]["status"] == "APPROVED"
    assert standin.submissions["sub001"]["status"] == "AWAITING REVIEW"


def test_admin_page_actions_are_dry_by_default_and_logged(standin, app_maker):
    client, _app, _ = app_maker()
    admin = client()
    admin.post("/admin/login", data={"token": "admin-token-for-tests-0123"})
    page = admin.get("/admin/prolific")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert admin.post("/admin/prolific", data={"action": "approve", "ids": "sub000"}).status_code == 403  # no CSRF
    r = admin.post("/admin/prolific", data={"csrf_token": csrf, "action": "approve", "ids": "sub000\nsub001"})
    assert r.status_code == 200 and "Dry run: nothing was sent." in r.text and standin.requests == []
    r = admin.post("/admin/prolific", data={"csrf_token": csrf, "action": "reject", "ids": "sub002",
                                            "category": "FAILED_CHECK", "message": MESSAGE, "execute": "yes"})
    assert r.status_code == 200 and standin.submissions["sub002"]["status"] == "REJECTED"
    r = admin.post("/admin/prolific", data={"csrf_token": csrf, "action": "reject", "ids": "sub003",
                                            "category": "FAILED_CHECK", "message": "short", "execute": "yes"})
    assert r.status_code == 400 and "at least 100 characters" in r.text
    log = admin.get("/admin/events.csv").text
    assert log.count("prolific_approve") == 2 and log.count("prolific_reject") == 1


def test_cli_approve_completed_with_nobody_finished_says_so(standin, app_maker, settings):
    client, _app, _ = app_maker(tasks_per_participant=1)
    Participant(client(), PROLIFIC_PID="pid001", STUDY_ID="STUDY1", SESSION_ID="sub001").start()
    out = CliRunner().invoke(cli, ["prolific", "approve", "--completed", "--db", settings.db_url, "--execute"])
    assert out.exit_code == 1
    assert "has finished the study yet" in out.output and "--completed --db" not in out.output
    assert standin.requests == []
