"""The payment ledger: money is paid once, however often a command runs (CLI and admin page against the
loopback stand-in of Prolific's API, the ledger in a real study database)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from thoughttrace.cli.main import cli
from thoughttrace.collect.db import Database, PaymentEntry

MESSAGE = ("Your submission did not follow the instructions: the notes were copied from the messages instead of "
           "saying why you sent them.")



@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'study.sqlite'}"


def run(*args: str):
    return CliRunner().invoke(cli, ["prolific", *args])


def requests_to(standin, fragment: str) -> int:
    return sum(1 for _m, path, _b in standin.requests if fragment in path)


def ledger(db: str) -> dict[str, tuple[str, str | None]]:
    d = Database(db)
    try:
        with d.session() as s:
            return {e.key: (e.status, e.amount) for e in s.scalars(select(PaymentEntry))}
    finally:
        d.dispose()


def test_the_same_bonus_twice_pays_once(standin, db):
    first = run("bonus", "--study", "STUDY1", "--pay", "pid001", "2.50", "--execute", "--db", db)
    assert first.exit_code == 0, first.output
    second = run("bonus", "--study", "STUDY1", "--pay", "pid001", "2.50", "--execute", "--db", db)
    assert second.exit_code == 0, second.output
    assert requests_to(standin, "/pay/") == 1 and len(standin.paid) == 1
    assert requests_to(standin, "/bonus-payments/") == 1  # not even set up again
    assert "ALREADY SENT: bonus pid001 2.50" in second.output and "nothing was sent" in second.output
    assert ledger(db) == {"bonus:STUDY1:pid001:bonus": ("sent", "2.50")}
    # a new participant in the same command is paid; the one already paid is not
    third = run("bonus", "--study", "STUDY1", "--pay", "pid001", "2.50", "--pay", "pid002", "1", "--execute",
                "--db", db, "--json")
    assert third.exit_code == 0, third.output
    states = {o["target"]: o["state"] for o in json.loads(third.output)["outcomes"]}
    assert states == {"pid001": "already_sent", "pid002": "sent"} and len(standin.paid) == 2
    assert json.loads(standin.requests[-2][2])["csv_bonuses"] == "pid002,1.00\n"
    # a deliberate second round has its own label
    assert run("bonus", "--study", "STUDY1", "--pay", "pid001", "0.50", "--label", "round2", "--execute",
               "--db", db).exit_code == 0
    assert len(standin.paid) == 3


def test_one_participant_twice_in_one_call_is_refused(standin, db, tmp_path):
    out = run("bonus", "--study", "STUDY1", "--pay", "pid001", "1.00", "--pay", "pid001", "1.00", "--execute",
              "--db", db)
    assert out.exit_code == 1 and "pid001 appears twice in this call" in out.output and "Traceback" not in out.output
    sheet = tmp_path / "b.csv"
    sheet.write_text("participant_id,amount\npid002,1.00\npid003,2.00\npid002,0.50\n")
    out = run("bonus", "--study", "STUDY1", "--csv", str(sheet), "--execute", "--db", db)
    assert out.exit_code == 1 and "pid002 appears twice" in out.output
    out = run("approve", "sub001", "sub001", "--execute", "--db", db)
    assert out.exit_code == 1 and "sub001 appears twice" in out.output
    assert standin.requests == [] and ledger(db) == {}


@pytest.mark.parametrize("amount", ["1e1", "10.005", "NaN", "nan", "Infinity", "-1", "+1", "1,50", "0", "0.00",
                                    "1_0", "１０"])
def test_an_amount_that_is_not_a_plain_decimal_is_refused(standin, db, amount):
    out = run("bonus", "--study", "STUDY1", "--pay", "pid001", amount, "--execute", "--db", db)
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output and ("plain decimal" in out.output or "above 0" in out.output)
    assert standin.requests == []


def test_the_caps_are_enforced_before_anything_is_sent(standin, db, monkeypatch):
    pays = [a for i in range(3) for a in ("--pay", f"pid00{i}", "100.00")]
    out = run("bonus", "--study", "STUDY1", *pays, "--execute", "--db", db)
    assert out.exit_code == 1 and "total 300.00, over the cap of 200.00 per run" in out.output
    assert standin.requests == []
    out = run("bonus", "--study", "STUDY1", *pays, "--max-total", "300", "--study-cap", "350", "--execute", "--db", db)
    assert out.exit_code == 0, out.output
    # the study cap counts what the ledger already holds for the study
    out = run("bonus", "--study", "STUDY1", "--pay", "pid003", "60.00", "--study-cap", "350", "--execute", "--db", db)
    assert out.exit_code == 1 and "would reach 360.00" in out.output and "300.00 already in the ledger" in out.output
    monkeypatch.setenv("PROLIFIC_BONUS_STUDY_CAP", "400")
    assert run("bonus", "--study", "STUDY1", "--pay", "pid003", "60.00", "--execute", "--db", db).exit_code == 0
    assert len(standin.paid) == 2


def test_execute_needs_the_ledger(standin):
    for args in (["bonus", "--study", "STUDY1", "--pay", "pid001", "1.00"], ["approve", "sub001"],
                 ["reject", "sub001", "--category", "OTHER", "--message", MESSAGE]):
        out = run(*args, "--execute")
        assert out.exit_code == 1 and "--db URL" in out.output, out.output
    assert standin.requests == []
    assert run("bonus", "--study", "STUDY1", "--pay", "pid001", "1.00").exit_code == 0  # a dry run needs none


def test_approve_and_reject_are_sent_once(standin, db):
    assert run("approve", "sub000", "sub001", "--execute", "--db", db).exit_code == 0
    again = run("approve", "sub000", "sub001", "--execute", "--db", db)
    assert again.exit_code == 0 and again.output.count("ALREADY SENT") == 2 and "nothing was sent" in again.output
    assert requests_to(standin, "/transition/") == 2  # the strict stand-in would have answered 400 to a repeat
    out = run("reject", "sub000", "--category", "LOW_EFFORT", "--message", MESSAGE, "--execute", "--db", db)
    assert out.exit_code == 0 and "already decided (approve" in out.output
    assert requests_to(standin, "/transition/") == 2 and standin.submissions["sub000"]["status"] == "APPROVED"
    # a refusal by Prolific is recorded as failed (nothing happened) and may be sent again
    standin.submissions["sub002"]["status"] = "ACTIVE"
    out = run("approve", "sub002", "--execute", "--db", db)
    assert out.exit_code == 1 and "FAILED: approve sub002" in out.output
    standin.submissions["sub002"]["status"] = "AWAITING REVIEW"
    assert run("approve", "sub002", "--execute", "--db", db).exit_code == 0
    assert standin.submissions["sub002"]["status"] == "APPROVED"


def test_a_payment_without_a_clear_answer_is_never_paid_again(standin, db):
    standin.pay_answers = [502]  # Prolific paid, then its answer was a server error
    out = run("bonus", "--study", "STUDY1", "--pay", "pid001", "3.00", "--execute", "--db", db)
    assert out.exit_code == 1 and "IN DOUBT: bonus pid001" in out.output
    assert ledger(db) == {"bonus:STUDY1:pid001:bonus": ("unknown", "3.00")}
    out = run("bonus", "--study", "STUDY1", "--pay", "pid001", "3.00", "--execute", "--db", db)
    assert out.exit_code == 0 and "check it on Prolific" in out.output and "nothing was sent" in out.output
    assert len(standin.paid) == 1


def test_the_admin_page_uses_the_ledger(standin, app_maker):
    client, _app, _ = app_maker()
    admin = client()
    admin.post("/admin/login", data={"token": "admin-token-for-tests-0123"})
    csrf = admin.get("/admin/prolific").text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": csrf, "action": "bonus", "study_id": "STUDY1", "ids": "pid004 1.25", "execute": "yes"}
    assert admin.post("/admin/prolific", data=form).status_code == 200
    second = admin.post("/admin/prolific", data=form)
    assert second.status_code == 200 and "already_sent" in second.text
    assert len(standin.paid) == 1 and requests_to(standin, "/pay/") == 1
    form["ids"] = "pid003 1e1"
    r = admin.post("/admin/prolific", data=form)
    assert r.status_code == 400 and "plain decimal" in r.text and len(standin.paid) == 1
