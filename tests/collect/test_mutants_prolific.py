"""Prolific client rules that scripts/mutate.py found unprotected (collect/prolific.py).

Why each matters: `ProlificError.sent` tells the payments ledger whether a failed request may have reached
Prolific (a bonus that may have been paid must not be paid again); reads are sent even in a dry run (the
approve-completed command needs the real list); a listing follows every page whichever way `next` is spelled;
ids and amounts are refused before anything is sent. Against the loopback stand-in, and for the answer shapes
it never gives (a plain-string `next`, a non-JSON error), a small loopback server of the test's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from collect_helpers import free_port
from prolific_standin import ProlificStandIn

from thoughttrace.collect.prolific import ProlificClient, ProlificError, parse_amount

MESSAGE = ("Your submission did not follow the instructions: the notes were copied from the messages instead of "
           "saying why you sent them.")



class _Pages(BaseHTTPRequestHandler):
    """GET /submissions/?page=N: three pages; `next` spelled as a string, then as {"href": None} (the end)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        page = int(self.path.split("page=")[1].split("&")[0])
        nxt: Any = {1: f"http://127.0.0.1/next?page={page + 1}", 2: {"href": f"/x?page={page + 1}"},
                    3: {"href": None}}[page]
        self._send(200, json.dumps({"results": [{"id": f"s{page}"}], "_links": {"next": nxt}}))

    def do_POST(self) -> None:  # noqa: N802
        self._send(502, "Bad gateway: upstream down", "text/plain")

    def _send(self, status: int, body: str, ctype: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def odd_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_request_refused_before_sending_says_it_was_not_sent(standin: ProlificStandIn) -> None:
    with pytest.raises(ProlificError) as e:
        ProlificClient.from_env(dry_run=False).reject("sub000", "too short", "OTHER")
    assert (e.value.status, e.value.sent) == (None, False) and standin.requests == []


def test_a_request_prolific_refused_carries_its_status_and_was_sent(standin: ProlificStandIn) -> None:
    with pytest.raises(ProlificError) as e:
        ProlificClient.from_env(dry_run=False).approve("nope")
    assert (e.value.status, e.value.sent) == (404, True)


def test_an_unreachable_api_may_have_received_the_request() -> None:
    c = ProlificClient(token="t", base_url=f"http://127.0.0.1:{free_port()}/api/v1", dry_run=False, timeout=5)
    with pytest.raises(ProlificError, match="cannot reach the Prolific API") as e:
        c.pay_bonuses("bulk1")
    assert (e.value.status, e.value.sent) == (None, True)


def test_reads_are_sent_even_in_a_dry_run_and_are_not_actions(standin: ProlificStandIn) -> None:
    c = ProlificClient.from_env()  # dry run
    subs = c.submissions("STUDY1")
    assert [s["id"] for s in subs] == [f"sub{i:03d}" for i in range(5)]  # three pages of the stand-in
    assert c.actions == []


def test_a_listing_follows_next_spelled_as_a_string_or_a_link_and_stops_at_a_null_href(odd_api: str) -> None:
    c = ProlificClient(token="t", base_url=odd_api, dry_run=False, timeout=5)
    assert [s["id"] for s in c.submissions("STUDY1")] == ["s1", "s2", "s3"]


def test_an_error_answer_that_is_not_json_is_quoted_in_the_message(odd_api: str) -> None:
    c = ProlificClient(token="t", base_url=odd_api, dry_run=False, timeout=5)
    with pytest.raises(ProlificError, match="with HTTP 502: Bad gateway: upstream down$") as e:
        c.approve("sub000")
    assert e.value.status == 502


def test_no_bonuses_is_refused_before_sending(standin: ProlificStandIn) -> None:
    with pytest.raises(ProlificError, match="no bonuses to set up"):
        ProlificClient.from_env(dry_run=False).set_up_bonuses("STUDY1", [])
    assert standin.requests == []


def test_a_dry_run_bonus_describes_both_requests_and_says_it_is_dry(standin: ProlificStandIn) -> None:
    c = ProlificClient.from_env()
    out = c.bonus("STUDY1", [("pid000", "1.50")])
    assert out["dry_run"] is True and out["setup"]["would_send"]["body"]["csv_bonuses"] == "pid000,1.50\n"
    assert [a.action for a in c.actions] == ["bonus_setup", "bonus_pay"] and standin.requests == []


def test_ids_with_dashes_and_underscores_pass_and_other_characters_are_refused(standin: ProlificStandIn) -> None:
    c = ProlificClient.from_env()
    assert c.approve("sub-01_a")["would_send"]["path"] == "/submissions/sub-01_a/transition/"
    for bad in ("../studies", "a b", "x/y", "", "a" * 65):
        with pytest.raises(ProlificError, match="is not a Prolific id"):
            c.approve(bad)
    assert [a.path for a in c.actions] == ["/submissions/sub-01_a/transition/"]


@pytest.mark.parametrize("amount", ["0", "0.00", "0.0"])
def test_a_zero_bonus_is_refused(amount: str) -> None:
    with pytest.raises(ProlificError, match="must be above 0"):
        parse_amount(amount)
    assert str(parse_amount("0.01")) == "0.01"  # the smallest amount passes
