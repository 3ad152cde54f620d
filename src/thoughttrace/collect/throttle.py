"""Admin credential throttling stored in the database, so every worker process sees every failure.

Bearer tokens and the login form share it. Each failure is one row keyed by what an attacker cannot
choose: the client address (the TCP peer, or what a *configured* proxy says it is: uvicorn believes
X-Forwarded-For only from THOUGHTTRACE_TRUSTED_PROXIES, see cli/serve_ops.py) and the token tried (its
hash: guessing one token from many addresses counts too). After `limit` failures of one address, or of
one token, within `window` seconds, every attempt from that address or with that token is refused (429),
the right token included, until the oldest of those failures ages out. The check and the record run in
one transaction that holds per-key locks (PostgreSQL: transaction-scoped advisory locks, address before
token, so two transactions never wait on each other in a cycle; SQLite: every write transaction is
BEGIN IMMEDIATE), so two workers answering guesses at the same moment cannot both let one more through.
Every failure and every refusal is logged (`thoughttrace.collect.admin`), with the token's hash, never
the token.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from .db import LoginFailure, utcnow

log = logging.getLogger("thoughttrace.collect.admin")

#: first key of the two-key PostgreSQL advisory lock (the second is a hash of the address or token)
_LOCK_KEY = 740_511
_BY_ADDRESS = select(LoginFailure.at).where(LoginFailure.address == bindparam("who"),
                                            LoginFailure.at > bindparam("since")).order_by(LoginFailure.at.desc())
_BY_TOKEN = select(LoginFailure.at).where(LoginFailure.token_hash == bindparam("who"),
                                          LoginFailure.at > bindparam("since")).order_by(LoginFailure.at.desc())


def token_hash(token: str) -> str:
    """What is stored and logged of a tried token: enough to count its guesses, useless to log in with."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:24]


class LoginThrottle:
    """Failed admin credentials per address and per token, in `login_failures` (see the module docstring)."""

    def __init__(self, limit: int = 5, window: float = 15 * 60) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window)

    def lock(self, s: Session, who: str) -> None:
        """Serialise this key's check-and-record across workers (until the transaction ends)."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:who))"), {"k": _LOCK_KEY, "who": who})

    def _wait(self, recent: list[datetime], now: datetime) -> int:
        if len(recent) < self.limit:
            return 0
        oldest_that_counts = recent[self.limit - 1]
        return max(1, int((oldest_that_counts + self.window - now).total_seconds()) + 1)

    def retry_after(self, s: Session, who: str, now: datetime | None = None, *, token: str | None = None) -> int:
        """Seconds until the address `who` (and, given, `token`) may try again (0: now)."""
        now = now or utcnow()
        since = now - self.window
        wait = self._wait(list(s.scalars(_BY_ADDRESS, {"who": who[:64], "since": since}).all()), now)
        if token is not None:
            by_token = list(s.scalars(_BY_TOKEN, {"who": token_hash(token), "since": since}).all())
            wait = max(wait, self._wait(by_token, now))
        return wait

    def failed(self, s: Session, who: str, now: datetime | None = None, *, token: str | None = None) -> None:
        now = now or utcnow()
        s.add(LoginFailure(address=who[:64], at=now, token_hash=token_hash(token) if token is not None else None))
        # failures are rare: forgetting every expired one here keeps the table small without a job
        s.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window))

    def succeeded(self, s: Session, who: str) -> None:
        s.execute(delete(LoginFailure).where(LoginFailure.address == who[:64]))

    def attempt(self, s: Session, who: str, token: str, ok: bool, via: str) -> int:
        """Check, then record, one credential (`ok`: it was right): the seconds to wait when refused (the
        answer does not depend on `ok` then), else 0 (and `ok` says whether it passed)."""
        self.lock(s, f"ip:{who}")
        self.lock(s, f"token:{token_hash(token)}")
        now = utcnow()
        wait = self.retry_after(s, who, now, token=token)
        if wait:
            log.warning("admin %s refused: locked out for %d s (address %s, token sha256 %s...)", via, wait, who,
                        token_hash(token)[:12])
            return wait
        if ok:
            if s.scalar(select(func.count()).select_from(LoginFailure).where(LoginFailure.address == who[:64])):
                self.succeeded(s, who)
            return 0
        self.failed(s, who, now, token=token)
        log.warning("admin %s failed: wrong token (address %s, token sha256 %s...)", via, who, token_hash(token)[:12])
        return 0

    def count(self, s: Session) -> int:
        """Stored failures (all addresses), for tests and the admin's curiosity."""
        return int(s.scalar(select(func.count()).select_from(LoginFailure)) or 0)
