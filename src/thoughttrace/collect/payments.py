"""The payment ledger: every Prolific approve / reject / bonus is written to the study database before it is
sent, under an idempotency key, so money is paid once however often a command is run.

Why: Prolific's bonus `pay` call is not idempotent (each call pays again), and a researcher re-runs a
command after a crash, a timeout or by mistake. Rules, checked for the whole call before anything is sent:

- one key per participant (bonus: study, participant and an optional label) or submission (approve and
  reject share `review:<submission>`: a submission is decided once); a key already in the ledger as sent,
  or in doubt, is not sent again and the report says so; only a key Prolific refused (`failed`: nothing
  happened there) is tried again;
- the same participant or submission twice in one call is refused;
- bonus amounts are plain decimals (`prolific.parse_amount`); the new bonuses of a run may total at most
  the run cap, and everything the ledger holds for the study plus them at most the study cap;
- statuses: pending (recorded, sending) -> set_up (bonus set up, pay not yet answered) -> sent; failed
  (Prolific answered with an error: safe to retry); unknown (no answer: it may have arrived, never resent).
  A pending or set_up entry left by a crashed run counts as in doubt too: check it on Prolific.

Dry runs read the ledger (to show what would be skipped) and write nothing to it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .db import Database, PaymentEntry
from .prolific import ProlificClient, ProlificError, _id, check_rejection, parse_amount

DEFAULT_RUN_CAP = Decimal("200.00")
DEFAULT_STUDY_CAP = Decimal("1000.00")
RUN_CAP_ENV = "PROLIFIC_BONUS_RUN_CAP"
STUDY_CAP_ENV = "PROLIFIC_BONUS_STUDY_CAP"
#: ledger statuses that mean "this may have happened on Prolific": never sent again
HELD = ("pending", "set_up", "sent", "unknown")

State = Literal["sent", "already_sent", "in_doubt", "failed", "dry_run"]


class PaymentRefused(ProlificError):
    """The call breaks a ledger rule (duplicate, cap, no ledger); nothing was sent."""


@dataclass
class Outcome:
    """What happened to one key in this run."""

    key: str
    action: str
    target: str
    amount: str | None
    state: State
    note: str = ""


@dataclass
class Report:
    """The run: its id and one outcome per key; `sent_nothing` when every key was already recorded."""

    run_id: str
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        """What this run tried and did not get confirmed (refused, or no answer)."""
        return [o for o in self.outcomes if o.state in ("failed", "in_doubt") and o.note.startswith("this run")]

    @property
    def sent_nothing(self) -> bool:
        return all(o.state in ("already_sent", "in_doubt") for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "dry_run": self.dry_run, "sent_nothing": self.sent_nothing,
                "outcomes": [o.__dict__ for o in self.outcomes]}

    def lines(self) -> list[str]:
        out = [f"{o.state.upper().replace('_', ' ')}: {o.action} {o.target}"
               f"{' ' + o.amount if o.amount else ''}{' - ' + o.note if o.note else ''}" for o in self.outcomes]
        if self.sent_nothing and self.outcomes:
            out.append("nothing was sent: every action of this command is already in the payment ledger")
        return out


def cap_from_env(name: str, default: Decimal) -> Decimal:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return parse_amount_cap(raw)
    except ProlificError as exc:
        raise PaymentRefused(f"{name}: {exc}") from None


def parse_amount_cap(value: str | Decimal) -> Decimal:
    """A cap: a plain decimal like an amount, but not bounded by the per-participant maximum."""
    text = str(value).strip()
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)) or not whole.isascii():
        raise PaymentRefused(f"cap {text!r} is not a plain decimal with at most 2 decimals (e.g. 250.00)")
    return Decimal(text)


def bonus_key(study_id: str, participant_id: str, label: str = "bonus") -> str:
    return f"bonus:{study_id}:{participant_id}:{label}"


def review_key(submission_id: str) -> str:
    return f"review:{submission_id}"


class Ledger:
    """The `payment_ledger` table of a study database (one short transaction per step)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def entries(self, keys: Iterable[str]) -> dict[str, PaymentEntry]:
        keys = list(keys)
        if not keys:
            return {}
        with self.db.session() as s:
            return {e.key: e for e in s.scalars(select(PaymentEntry).where(PaymentEntry.key.in_(keys)))}

    def study_bonus_total(self, study_id: str) -> Decimal:
        with self.db.session() as s:
            amounts = s.scalars(select(PaymentEntry.amount).where(
                PaymentEntry.study_id == study_id, PaymentEntry.action == "bonus", PaymentEntry.status.in_(HELD)))
            return sum((Decimal(a) for a in amounts if a), Decimal("0"))

    def record(self, rows: Sequence[tuple[str, str, str | None, str, str | None]], run_id: str) -> set[str]:
        """Write (key, action, study, target, amount) as pending before sending; returns the keys this run
        now owns. A key recorded meanwhile by another run (the unique index) is not owned: not sent."""
        owned: set[str] = set()
        for key, action, study_id, target, amount in rows:
            try:
                with self.db.session() as s:
                    e = s.scalars(select(PaymentEntry).where(PaymentEntry.key == key)).first()
                    if e is None:
                        s.add(PaymentEntry(key=key, action=action, study_id=study_id, target=target, amount=amount,
                                           status="pending", run_id=run_id, detail=""))
                    elif e.status == "failed":  # Prolific refused it earlier: nothing happened, try again
                        e.status, e.run_id, e.amount, e.action, e.bulk_id = "pending", run_id, amount, action, None
                    else:
                        continue
                owned.add(key)
            except IntegrityError:
                continue
        return owned

    def mark(self, keys: Iterable[str], status: str, detail: str = "", bulk_id: str | None = None) -> None:
        keys = list(keys)
        with self.db.session() as s:
            for e in s.scalars(select(PaymentEntry).where(PaymentEntry.key.in_(keys))):
                e.status = status
                e.detail = detail[:2000]
                if bulk_id is not None:
                    e.bulk_id = bulk_id


def _prior_note(e: PaymentEntry) -> tuple[State, str]:
    when = e.updated_at.isoformat(timespec="seconds") if e.updated_at else "?"
    if e.status == "sent":
        return "already_sent", f"already {e.action} ({'paid ' + e.amount if e.amount else 'sent'}) on {when}, " \
                               f"run {e.run_id}: not sent again"
    return "in_doubt", (f"recorded as {e.status} on {when} (run {e.run_id}) without a confirmed answer: it may have "
                        "reached Prolific, so it is not sent again; check it on Prolific")


def _no_duplicates(targets: Sequence[str], what: str) -> None:
    seen: dict[str, int] = {}
    for n, t in enumerate(targets, 1):
        if t in seen:
            raise PaymentRefused(f"{what} {t} appears twice in this call (entries {seen[t]} and {n}); nothing was "
                                 "sent: give each once (add the amounts up for one bonus)")
        seen[t] = n


def _fail_state(exc: ProlificError) -> tuple[str, State]:
    """Ledger status and outcome of a failed send: refused (a 4xx, or never sent: nothing happened) or
    unanswered / a server error (5xx: it may have been carried out, so it is never sent again by itself)."""
    if not exc.sent or (exc.status is not None and exc.status < 500):
        return "failed", "failed"
    return "unknown", "in_doubt"


def pay_bonuses(client: ProlificClient, ledger: Ledger | None, study_id: str,
                rows: Sequence[tuple[str, str | int | Decimal]], *, label: str = "bonus",
                run_cap: Decimal | None = None, study_cap: Decimal | None = None) -> Report:
    """Set up and pay one bonus per participant, at most once per (study, participant, label), within the caps."""
    report = Report(secrets.token_hex(8), client.dry_run)
    study_id = _id(study_id)
    label = _id(label)
    if not rows:
        raise PaymentRefused("no bonuses: give PARTICIPANT_ID AMOUNT pairs")
    parsed = [(_id(pid), parse_amount(amount)) for pid, amount in rows]  # every amount checked first
    _no_duplicates([p for p, _ in parsed], "participant")
    if ledger is None and not client.dry_run:
        raise PaymentRefused("paying bonuses for real needs the study database's payment ledger (--db URL), so "
                             "that running the command again pays nobody twice")
    run_cap = cap_from_env(RUN_CAP_ENV, DEFAULT_RUN_CAP) if run_cap is None else run_cap
    study_cap = cap_from_env(STUDY_CAP_ENV, DEFAULT_STUDY_CAP) if study_cap is None else study_cap
    keys = {pid: bonus_key(study_id, pid, label) for pid, _ in parsed}
    prior = ledger.entries(keys.values()) if ledger else {}
    new: list[tuple[str, Decimal]] = []
    for pid, amount in parsed:
        e = prior.get(keys[pid])
        if e is not None and e.status in HELD:
            state, note = _prior_note(e)
            report.outcomes.append(Outcome(keys[pid], "bonus", pid, e.amount, state, note))
        else:
            new.append((pid, amount))
    total = sum((a for _, a in new), Decimal("0"))
    if total > run_cap:
        raise PaymentRefused(f"these bonuses total {total:.2f}, over the cap of {run_cap:.2f} per run; nothing was "
                             f"sent (raise it with --max-total or {RUN_CAP_ENV} if that is really meant)")
    held = ledger.study_bonus_total(study_id) if ledger else Decimal("0")
    if held + total > study_cap:
        raise PaymentRefused(f"study {study_id} would reach {held + total:.2f} in bonuses ({held:.2f} already in the "
                             f"ledger + {total:.2f} now), over its cap of {study_cap:.2f}; nothing was sent (raise "
                             f"it with --study-cap or {STUDY_CAP_ENV} if that is really meant)")
    if not new:
        return report
    if client.dry_run:
        client.set_up_bonuses(study_id, new)
        client._call("bonus_pay", "POST", "/bulk-bonus-payments/{id from set-up}/pay/")
        report.outcomes += [Outcome(keys[p], "bonus", p, f"{a:.2f}", "dry_run", "not sent") for p, a in new]
        return report
    assert ledger is not None
    owned = ledger.record([(keys[p], "bonus", study_id, p, f"{a:.2f}") for p, a in new], report.run_id)
    lost = [(p, a) for p, a in new if keys[p] not in owned]
    for p, a in lost:  # another run recorded it between our read and our write
        report.outcomes.append(Outcome(keys[p], "bonus", p, f"{a:.2f}", "in_doubt",
                                       "recorded by another run at the same moment: not sent by this one"))
    mine = [(p, a) for p, a in new if keys[p] in owned]
    if not mine:
        return report
    my_keys = [keys[p] for p, _ in mine]
    try:
        setup = client.set_up_bonuses(study_id, mine)
    except ProlificError as exc:  # nothing is paid before `pay`: a failed set-up can always be tried again
        ledger.mark(my_keys, "failed", f"set-up: {exc}")
        report.outcomes += [Outcome(keys[p], "bonus", p, f"{a:.2f}", "failed", f"this run: set-up failed: {exc}")
                            for p, a in mine]
        return report
    bulk_id = str(setup.get("id")) if isinstance(setup, dict) and setup.get("id") else ""
    if not bulk_id:
        ledger.mark(my_keys, "failed", f"set-up returned no id: {setup!r}"[:500])
        report.outcomes += [Outcome(keys[p], "bonus", p, f"{a:.2f}", "failed", "this run: set-up returned no id")
                            for p, a in mine]
        return report
    ledger.mark(my_keys, "set_up", json.dumps(setup, default=str)[:2000], bulk_id=bulk_id)
    try:
        client.pay_bonuses(bulk_id)
    except ProlificError as exc:
        status, state = _fail_state(exc)
        ledger.mark(my_keys, status, f"pay {bulk_id}: {exc}")
        report.outcomes += [Outcome(keys[p], "bonus", p, f"{a:.2f}", state, f"this run: pay failed: {exc}")
                            for p, a in mine]
        return report
    ledger.mark(my_keys, "sent", f"paid bulk bonus {bulk_id}")
    report.outcomes += [Outcome(keys[p], "bonus", p, f"{a:.2f}", "sent", f"bulk bonus {bulk_id}") for p, a in mine]
    return report


def review(client: ProlificClient, ledger: Ledger | None, action: Literal["approve", "reject"],
           submission_ids: Sequence[str], *, message: str = "", category: str = "",
           bulk_study_id: str | None = None) -> Report:
    """Approve or reject submissions, each at most once (a submission is decided once on Prolific)."""
    report = Report(secrets.token_hex(8), client.dry_run)
    ids = [_id(i) for i in submission_ids]
    if not ids:
        raise PaymentRefused(f"no submission ids to {action}")
    _no_duplicates(ids, "submission")
    if action == "reject":
        check_rejection(message, category)
    if ledger is None and not client.dry_run:
        raise PaymentRefused(f"to {action} for real, give the study database (--db URL): its payment ledger makes "
                             "sure running the command again sends nothing twice")
    keys = {i: review_key(i) for i in ids}
    prior = ledger.entries(keys.values()) if ledger else {}
    new: list[str] = []
    for i in ids:
        e = prior.get(keys[i])
        if e is not None and e.status in HELD:
            state, note = _prior_note(e)
            if e.action != action:
                note = f"already decided ({e.action}, {e.status}): a submission is decided once; not sent"
            report.outcomes.append(Outcome(keys[i], action, i, None, state, note))
        else:
            new.append(i)
    if not new:
        return report
    send: Callable[[str], Any] = (client.approve if action == "approve"
                                  else (lambda sid: client.reject(sid, message, category)))
    if client.dry_run:
        if action == "approve" and bulk_study_id and len(new) > 1:
            client.bulk_approve(bulk_study_id, new)
        else:
            for i in new:
                send(i)
        report.outcomes += [Outcome(keys[i], action, i, None, "dry_run", "not sent") for i in new]
        return report
    assert ledger is not None
    owned = ledger.record([(keys[i], action, bulk_study_id, i, None) for i in new], report.run_id)
    for i in new:
        if keys[i] not in owned:
            report.outcomes.append(Outcome(keys[i], action, i, None, "in_doubt",
                                           "recorded by another run at the same moment: not sent by this one"))
    mine = [i for i in new if keys[i] in owned]
    if action == "approve" and bulk_study_id and len(mine) > 1:
        try:
            client.bulk_approve(bulk_study_id, mine)
        except ProlificError as exc:
            status, state = _fail_state(exc)
            ledger.mark([keys[i] for i in mine], status, f"bulk approve: {exc}")
            report.outcomes += [Outcome(keys[i], action, i, None, state, f"this run: {exc}") for i in mine]
            return report
        ledger.mark([keys[i] for i in mine], "sent", "bulk approve")
        report.outcomes += [Outcome(keys[i], action, i, None, "sent", "bulk approve") for i in mine]
        return report
    for i in mine:
        try:
            answer = send(i)
        except ProlificError as exc:
            status, state = _fail_state(exc)
            ledger.mark([keys[i]], status, str(exc))
            report.outcomes.append(Outcome(keys[i], action, i, None, state, f"this run: {exc}"))
            continue
        ledger.mark([keys[i]], "sent", json.dumps(answer, default=str)[:2000])
        report.outcomes.append(Outcome(keys[i], action, i, None, "sent",
                                       f"status {answer.get('status')}" if isinstance(answer, dict) else ""))
    return report
