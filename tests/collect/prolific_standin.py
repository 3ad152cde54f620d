"""A loopback stand-in for the parts of Prolific's API the platform uses, with its error answers.

Shapes follow the public reference (docs.prolific.com/api-reference): `Authorization: Token ...`,
paged `GET /api/v1/submissions/?study=` (`results`, `_links.next.href`), `POST .../transition/` with
APPROVE / REJECT (message >= 100 characters after trimming, as the API's text fields trim, and a
documented `rejection_category`), bulk approve, bonus set-up from `csv_bonuses` (400 naming unknown ids or
an amount that is not a plain decimal) and pay (not idempotent: every call pays again, as Prolific warns).
Errors come as `{"error": {"status", "error_code", "title", "detail"}}`. Every request is recorded in
`requests`.

Never more lenient than the real API: a submission is decided once ("Once the status is changed, it can not
be restored"); the reference calls a repeated transition "ignored", but here any second transition of a
decided submission is a 400, so a client that relied on the repeat being harmless fails its tests.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import uvicorn
from collect_helpers import free_port
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TOKEN = "standin-token-0123456789"
CATEGORIES = {"TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK",
              "LOW_EFFORT", "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER"}


PLAIN_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


def _error(status: int, title: str, detail: Any) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "error_code": status * 100, "title": title, "detail": detail}},
                        status_code=status)


class ProlificStandIn:
    def __init__(self, study_id: str = "STUDY1", participants: int = 5) -> None:
        self.study_id = study_id
        self.submissions: dict[str, dict[str, Any]] = {}
        for i in range(participants):
            sid = f"sub{i:03d}"
            self.submissions[sid] = {"id": sid, "participant_id": f"pid{i:03d}", "study_id": study_id,
                                     "status": "AWAITING REVIEW"}
        self.bonuses: dict[str, dict[str, Any]] = {}
        self.paid: list[str] = []
        #: HTTP statuses the next pay calls answer with (after paying), e.g. [502]
        self.pay_answers: list[int] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.app = self._build()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ProlificStandIn:
        self.thread.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(self.base + "/submissions/", timeout=1)
                self.requests.clear()  # the start-up probe is not part of any test
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("stand-in did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def _build(self) -> FastAPI:
        app = FastAPI()
        me = self

        @app.middleware("http")
        async def auth(request: Request, call_next: Any) -> Any:
            body = await request.body()
            me.requests.append((request.method, request.url.path, body.decode() or None))
            if request.headers.get("authorization") != f"Token {TOKEN}":
                return _error(401, "Authentication failed", "Invalid token.")
            return await call_next(request)

        @app.get("/api/v1/submissions/")
        async def list_submissions(study: str | None = None, page: int = 1, status: str | None = None) -> Any:
            if not study:
                return _error(400, "Bad request", "A study id is required.")
            subs = [s for s in me.submissions.values() if s["study_id"] == study
                    and (status is None or s["status"].replace(" ", "_") == status.upper())]
            chunk = subs[(page - 1) * 2:page * 2]
            nxt = {"href": f"{me.base}/submissions/?study={study}&page={page + 1}"} if page * 2 < len(subs) else None
            return {"results": chunk, "_links": {"next": nxt}, "meta": {"count": len(subs)}}

        @app.post("/api/v1/submissions/{sid}/transition/")
        async def transition(sid: str, request: Request) -> Any:
            sub = me.submissions.get(sid)
            if sub is None:
                return _error(404, "Not found", "No Submission matches the given query.")
            data = await request.json()
            action = data.get("action")
            if action == "REJECT":
                if len((data.get("message") or "").strip()) < 100:
                    return _error(400, "Bad request", {"message": ["Ensure this field has at least 100 characters."]})
                if data.get("rejection_category") not in CATEGORIES:
                    return _error(400, "Bad request", {"rejection_category": ["Not a valid choice."]})
            elif action != "APPROVE":
                return _error(400, "Bad request", {"action": ["Not a valid choice."]})
            target = "APPROVED" if action == "APPROVE" else "REJECTED"
            if sub["status"] != "AWAITING REVIEW":
                return _error(400, "Bad request", f"Cannot transition a submission from {sub['status']}.")
            sub["status"] = target
            return sub

        @app.post("/api/v1/submissions/bulk-approve/")
        async def bulk(request: Request) -> Any:
            data = await request.json()
            ids = data.get("submission_ids") or []
            unknown = [i for i in ids if i not in me.submissions]
            if unknown:
                return _error(400, "Bad request", f"Unknown submission ids: {unknown}")
            decided = [i for i in ids if me.submissions[i]["status"] != "AWAITING REVIEW"]
            if decided:
                return _error(400, "Bad request", f"Submissions not awaiting review: {decided}")
            for i in ids:
                me.submissions[i]["status"] = "APPROVED"
            return "The request to bulk approve has been handled successfully."

        @app.post("/api/v1/submissions/bonus-payments/")
        async def setup(request: Request) -> Any:
            data = await request.json()
            known = {s["participant_id"] for s in me.submissions.values()} | set(me.submissions)
            total = 0
            bad = []
            for line in (data.get("csv_bonuses") or "").strip().splitlines():
                pid, amount = line.split(",")
                if pid not in known:
                    bad.append(pid)
                if not PLAIN_AMOUNT.match(amount):
                    return _error(400, "Bad request", {"csv_bonuses": [f"Invalid amount: {amount!r}"]})
                total += int(Decimal(amount) * 100)
            if bad or data.get("study_id") != me.study_id:
                return _error(400, "Bad request", {"csv_bonuses": [f"Invalid participant or submission ids: {bad}"]}
                              if bad else {"study_id": ["Unknown study."]})
            bid = uuid.uuid4().hex[:24]
            me.bonuses[bid] = {"id": bid, "study": me.study_id, "amount": total, "fees": round(total * 0.33),
                               "total_amount": total + round(total * 0.33)}
            return JSONResponse(me.bonuses[bid], status_code=201)

        @app.post("/api/v1/bulk-bonus-payments/{bid}/pay/")
        async def pay(bid: str) -> Any:
            if bid not in me.bonuses:
                return _error(404, "Not found", "No BulkBonusPayment matches the given query.")
            me.paid.append(bid)  # Prolific pays on every call, even for the same id
            if me.pay_answers:  # a scripted server error AFTER the payment went through (tests of "in doubt")
                return _error(me.pay_answers.pop(0), "Server error", "Something went wrong.")
            return JSONResponse({}, status_code=202)

        return app
