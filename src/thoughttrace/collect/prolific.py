"""A small client for Prolific's researcher API: list, approve and reject submissions, pay bonuses.

Follows the public API (https://docs.prolific.com/api-reference): base `https://api.prolific.com/api/v1/`,
header `Authorization: Token <token>`;
- `GET  /submissions/?study=ID`                 list a study's submissions (paged: `results`, `_links.next`)
- `POST /submissions/{id}/transition/`          `{"action": "APPROVE"}` or `{"action": "REJECT", "message":
                                                 ..., "rejection_category": ...}` (message >= 100 characters)
- `POST /submissions/bulk-approve/`             `{"study_id": ..., "submission_ids": [...]}`
- `POST /submissions/bonus-payments/`           `{"study_id": ..., "csv_bonuses": "<pid>,<amount>\\n..."}`
                                                 -> `{"id": ..., "total_amount": ...}` (sets up, pays nothing)
- `POST /bulk-bonus-payments/{id}/pay/`         pays a set-up bonus (NOT idempotent: call once)

Every call is dry-run unless `dry_run=False`: a dry run records the exact request it would send and sends
nothing. The token comes from the environment (`PROLIFIC_TOKEN`), never from code or the study file.
Each action (dry or not) is handed to `on_action`, which the platform writes to its audit log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

DEFAULT_API_URL = "https://api.prolific.com/api/v1"
TOKEN_ENV = "PROLIFIC_TOKEN"
API_URL_ENV = "PROLIFIC_API_URL"
#: the documented rejection categories of `POST /submissions/{id}/transition/` (checked against Prolific's
#: API reference "Approve or reject a submission", where `rejection_category` and a message of at least 100
#: characters are required with action REJECT, and against Prolific's own CLI, which lists these twelve)
REJECTION_CATEGORIES = (
    "TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK", "LOW_EFFORT",
    "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER",
)
MIN_REJECTION_MESSAGE = 100
MAX_BONUS = Decimal("100")  # per participant and call: a typo of 1000 for 10.00 is stopped here


class ProlificError(RuntimeError):
    """A refused or failed API call; the message says what Prolific answered and what to check.

    `status` is Prolific's HTTP status when it answered (it refused: nothing happened), None when the
    request was refused before sending or got no answer (`sent` then says whether it may have arrived).
    """

    def __init__(self, message: str, *, status: int | None = None, sent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.sent = sent


@dataclass(frozen=True)
class Action:
    """One request, sent or (dry run) only described."""

    action: str
    method: str
    path: str
    body: dict[str, Any] | None
    dry_run: bool
    status: int | None = None
    response: Any = None


@dataclass
class ProlificClient:
    token: str
    base_url: str = DEFAULT_API_URL
    dry_run: bool = True
    timeout: float = 30.0
    on_action: Callable[[Action], None] | None = None
    transport: httpx.BaseTransport | None = None
    actions: list[Action] = field(default_factory=list)

    @classmethod
    def from_env(cls, *, dry_run: bool = True, **kw: Any) -> ProlificClient:
        token = os.environ.get(TOKEN_ENV, "")
        if not token and not dry_run:
            raise ProlificError(f"{TOKEN_ENV} is not set: create an API token in Prolific (Settings > API tokens) "
                                f"and `export {TOKEN_ENV}=...`; dry runs work without it")
        return cls(token=token, base_url=os.environ.get(API_URL_ENV, DEFAULT_API_URL), dry_run=dry_run, **kw)

    # -- transport -----------------------------------------------------------------------------------
    def _call(self, action: str, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None, *, always_send: bool = False) -> Any:
        if self.dry_run and not always_send:
            done = Action(action, method, path, body, True)
            self._record(done)
            return {"dry_run": True, "would_send": {"method": method, "path": path, "body": body}}
        if not self.token:
            raise ProlificError(f"{TOKEN_ENV} is not set; cannot call {method} {path}")
        url = self.base_url.rstrip("/") + path
        try:
            with httpx.Client(timeout=self.timeout, transport=self.transport) as c:
                r = c.request(method, url, json=body, params=params,
                              headers={"Authorization": f"Token {self.token}"})
        except httpx.HTTPError as exc:
            raise ProlificError(f"cannot reach the Prolific API at {self.base_url} ({type(exc).__name__}: {exc}); "
                                "check the network or PROLIFIC_API_URL", sent=True) from None
        data: Any
        try:
            data = r.json() if r.content else None
        except ValueError:
            data = r.text[:500]
        if not always_send or r.status_code >= 400:
            self._record(Action(action, method, path, body, False, r.status_code, data))
        if r.status_code >= 400:
            raise ProlificError(f"Prolific refused {method} {path} with HTTP {r.status_code}: {_error_text(data)}"
                                f"{_hint(r.status_code)}", status=r.status_code, sent=True)
        return data

    def _record(self, a: Action) -> None:
        self.actions.append(a)
        if self.on_action is not None:
            self.on_action(a)

    # -- reads ---------------------------------------------------------------------------------------
    def submissions(self, study_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """Every submission of a study (all pages); reads are sent even in a dry run."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            params: dict[str, Any] = {"study": study_id, "page": page}
            if status:
                params["status"] = status
            data = self._call("list", "GET", "/submissions/", params=params, always_send=True)
            out.extend(data.get("results", []) if isinstance(data, dict) else [])
            nxt = (data.get("_links") or {}).get("next") if isinstance(data, dict) else None
            if not nxt or not (nxt.get("href") if isinstance(nxt, dict) else nxt):
                return out
            page += 1

    # -- writes --------------------------------------------------------------------------------------
    def approve(self, submission_id: str) -> Any:
        return self._call("approve", "POST", f"/submissions/{_id(submission_id)}/transition/", {"action": "APPROVE"})

    def reject(self, submission_id: str, message: str, category: str) -> Any:
        check_rejection(message, category)
        return self._call("reject", "POST", f"/submissions/{_id(submission_id)}/transition/",
                          {"action": "REJECT", "message": message.strip(), "rejection_category": category})

    def bulk_approve(self, study_id: str, submission_ids: Sequence[str]) -> Any:
        ids = [_id(x) for x in submission_ids]
        if not ids:
            raise ProlificError("no submission ids to approve")
        return self._call("bulk_approve", "POST", "/submissions/bulk-approve/",
                          {"study_id": _id(study_id), "submission_ids": ids})

    def set_up_bonuses(self, study_id: str, bonuses: Sequence[tuple[str, str | float | Decimal]]) -> Any:
        """Create a bulk bonus (pays nothing yet); amounts in the study's currency, e.g. 1.50."""
        lines = [f"{_id(pid)},{parse_amount(amount):.2f}" for pid, amount in bonuses]
        if not lines:
            raise ProlificError("no bonuses to set up")
        return self._call("bonus_setup", "POST", "/submissions/bonus-payments/",
                          {"study_id": _id(study_id), "csv_bonuses": "\n".join(lines) + "\n"})

    def pay_bonuses(self, bulk_id: str) -> Any:
        """Pay a set-up bonus. Not idempotent on Prolific's side: call it once per set-up."""
        return self._call("bonus_pay", "POST", f"/bulk-bonus-payments/{_id(bulk_id)}/pay/")

    def bonus(self, study_id: str, bonuses: Sequence[tuple[str, str | float | Decimal]]) -> Any:
        """Set up and pay in one go (a dry run describes both requests)."""
        setup = self.set_up_bonuses(study_id, bonuses)
        if self.dry_run:
            self._call("bonus_pay", "POST", "/bulk-bonus-payments/{id from set-up}/pay/")
            return {"dry_run": True, "setup": setup}
        bulk_id = setup.get("id") if isinstance(setup, dict) else None
        if not bulk_id:
            raise ProlificError(f"Prolific set up the bonus but returned no id: {setup!r}")
        return {"setup": setup, "pay": self.pay_bonuses(str(bulk_id))}


def check_rejection(message: str, category: str) -> None:
    """The API's own rules, checked before anything is sent."""
    if category not in REJECTION_CATEGORIES:
        raise ProlificError(f"unknown rejection category {category!r}; use one of: {', '.join(REJECTION_CATEGORIES)}")
    n = rejection_message_length(message)
    if n < MIN_REJECTION_MESSAGE:
        raise ProlificError(f"a rejection message must be at least {MIN_REJECTION_MESSAGE} characters "
                            f"(it has {n}, not counting spaces added around or between words); explain to the "
                            "participant why")


def rejection_message_length(message: str) -> int:
    """Characters that count towards the 100: leading/trailing whitespace (Prolific's API trims it, as its
    framework's text fields do) and runs of spaces inside (padding that says nothing) do not."""
    return len(" ".join(str(message).split()))


def _id(value: str) -> str:
    v = str(value).strip()
    if not v or not all(ch.isalnum() or ch in "-_" for ch in v) or len(v) > 64:
        raise ProlificError(f"{value!r} is not a Prolific id (letters, digits, '-' or '_')")
    return v


_PLAIN_AMOUNT = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,2})?$")


def parse_amount(value: str | int | float | Decimal) -> Decimal:
    """A bonus amount as Prolific documents it: a plain decimal in the study's currency, e.g. 1.50.

    Refused, never rounded: exponents (`1e1`), more than 2 decimals (`10.005`), NaN/Infinity, signs,
    thousands separators, 0 and anything above MAX_BONUS (a typo of 1000 for 10.00 stops here).
    """
    text = str(value).strip()
    if isinstance(value, bool) or not _PLAIN_AMOUNT.match(text):
        raise ProlificError(f"bonus amount {str(value)!r} is not a plain decimal with at most 2 decimals: write "
                            "e.g. 1.50 (no exponent like 1e1, no third decimal, no sign or thousands separator)")
    try:
        d = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits and one point
        raise ProlificError(f"bonus amount {text!r} is not a number (write e.g. 1.50)") from None
    if d <= 0 or d > MAX_BONUS:
        raise ProlificError(f"bonus amount {text} must be above 0 and at most {MAX_BONUS} "
                            "(it is in the study's currency: 1.50 means 1.50, not 150)")
    return d


def _error_text(data: Any) -> str:
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            detail = err.get("detail") or err.get("title") or err
            return str(detail)[:500]
        return str(err)[:500]
    return str(data)[:500]


def _hint(status: int) -> str:
    return {401: " (check PROLIFIC_TOKEN)", 403: " (the token's workspace cannot act on this study)",
            404: " (check the study/submission id)",
            429: " (rate limited: wait a minute and retry)"}.get(status, "")
