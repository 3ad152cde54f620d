"""Payment-ledger rules that scripts/mutate.py found unprotected (collect/payments.py).

Why each matters: a cap is money, so it is read as strictly as an amount; the ledger keeps bounded notes of what
Prolific answered (a huge answer must not bloat the study database); approvals of several submissions go in one
bulk request and are each reported, one approval goes alone. Against the loopback stand-in, a real SQLite ledger,
and for a set-up answer without an id (which the stand-in never gives) a loopback server of the test's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from collect_helpers import free_port
from prolific_standin import ProlificStandIn
from sqlalchemy import select

from thoughttrace.collect.db import Database, PaymentEntry
from thoughttrace.collect.migrate import upgrade
from thoughttrace.collect.payments import Ledger, PaymentRefused, parse_amount_cap, pay_bonuses, review
from thoughttrace.collect.prolific import ProlificClient


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    db = Database(f"sqlite:///{tmp_path / 'study.sqlite'}")
    upgrade(db.engine)
    try:
        yield Ledger(db)
    finally:
        db.dispose()


def _entries(ledger: Ledger) -> dict[str, PaymentEntry]:
    with ledger.db.session() as s:
        return {e.key: e for e in s.scalars(select(PaymentEntry))}


@pytest.mark.parametrize("cap", ["250.005", "1.2.3", "２００", "-5", "1e3", "", "12,00"])
def test_a_cap_is_refused_unless_a_plain_ascii_decimal_with_two_decimals(cap: str) -> None:
    with pytest.raises(PaymentRefused, match="is not a plain decimal with at most 2 decimals"):
        parse_amount_cap(cap)


def test_a_plain_cap_is_read_exactly() -> None:
    assert parse_amount_cap("250.05") == Decimal("250.05") and parse_amount_cap("1000") == Decimal("1000")


def test_a_ledger_note_is_cut_at_2000_characters(ledger: Ledger) -> None:
    assert ledger.record([("k1", "bonus", "S", "p", "1.00")], "run1") == {"k1"}
    ledger.mark(["k1"], "sent", "x" * 5000)
    assert _entries(ledger)["k1"].detail == "x" * 2000


def test_no_submission_ids_is_refused(standin: ProlificStandIn) -> None:
    with pytest.raises(PaymentRefused, match="no submission ids to approve"):
        review(ProlificClient.from_env(), None, "approve", [])
    assert standin.requests == []


def test_one_approval_goes_alone_several_go_in_one_bulk_request(standin: ProlificStandIn, ledger: Ledger) -> None:
    c = ProlificClient.from_env(dry_run=False)
    one = review(c, ledger, "approve", ["sub000"], bulk_study_id="STUDY1")
    assert [(o.target, o.state, o.note) for o in one.outcomes] == [("sub000", "sent", "status APPROVED")]
    two = review(c, ledger, "approve", ["sub001", "sub002"], bulk_study_id="STUDY1")
    assert [(o.target, o.state, o.note) for o in two.outcomes] == [("sub001", "sent", "bulk approve"),
                                                                  ("sub002", "sent", "bulk approve")]
    assert [p for _m, p, _b in standin.requests] == ["/api/v1/submissions/sub000/transition/",
                                                     "/api/v1/submissions/bulk-approve/"]
    assert {k: e.status for k, e in _entries(ledger).items()} == {
        "review:sub000": "sent", "review:sub001": "sent", "review:sub002": "sent"}


class _NoId(BaseHTTPRequestHandler):
    """A bonus set-up answered 201 without an id (and a long body): nothing can be paid."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        data = json.dumps({"status": "CREATED", "note": "y" * 3000}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_set_up_without_an_id_is_failed_with_a_bounded_note(ledger: Ledger) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _NoId)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = ProlificClient(token="t", base_url=f"http://127.0.0.1:{server.server_address[1]}", dry_run=False,
                           timeout=5)
        report = pay_bonuses(c, ledger, "STUDY1", [("pid000", "1.50")])
    finally:
        server.shutdown()
        server.server_close()
    assert [(o.state, o.note) for o in report.outcomes] == [("failed", "this run: set-up returned no id")]
    entry = _entries(ledger)["bonus:STUDY1:pid000:bonus"]
    assert entry.status == "failed" and len(entry.detail) == 500
    assert entry.detail.startswith("set-up returned no id: {'status': 'CREATED'")
