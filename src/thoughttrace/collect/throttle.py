"""Admin login throttling stored in the database, so every worker process sees every failure.

After `limit` failed logins from one client address within `window` seconds, that address is refused
(429) until the oldest of those failures ages out. The check and the record run in one transaction
that holds a per-address lock (PostgreSQL: a transaction-scoped advisory lock; SQLite: every write
transaction is BEGIN IMMEDIATE), so two workers answering guesses at the same moment cannot both let
a sixth one through. The admin token is long and random: this only has to make guessing slow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from .db import LoginFailure, utcnow

#: first key of the two-key PostgreSQL advisory lock (the second is a hash of the address)
_LOCK_KEY = 740_511
_FAILURES_OF = select(LoginFailure.at).where(LoginFailure.address == bindparam("address"),
                                             LoginFailure.at > bindparam("since")).order_by(LoginFailure.at.desc())


class LoginThrottle:
    """Failed admin logins per client address, in the `login_failures` table (see the module docstring)."""

    def __init__(self, limit: int = 5, window: float = 15 * 60) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window)

    def lock(self, s: Session, who: str) -> None:
        """Serialise this address's check-and-record across workers (until the transaction ends)."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:who))"), {"k": _LOCK_KEY, "who": who})

    def retry_after(self, s: Session, who: str, now: datetime | None = None) -> int:
        """Seconds until `who` may try again (0: now)."""
        now = now or utcnow()
        recent = list(s.scalars(_FAILURES_OF, {"address": who[:64], "since": now - self.window}).all())
        if len(recent) < self.limit:
            return 0
        oldest_that_counts = recent[self.limit - 1]
        return max(1, int((oldest_that_counts + self.window - now).total_seconds()) + 1)

    def failed(self, s: Session, who: str, now: datetime | None = None) -> None:
        now = now or utcnow()
        s.add(LoginFailure(address=who[:64], at=now))
        # failures are rare: forgetting every expired one here keeps the table small without a job
        s.execute(delete(LoginFailure).where(LoginFailure.at <= now - self.window))

    def succeeded(self, s: Session, who: str) -> None:
        s.execute(delete(LoginFailure).where(LoginFailure.address == who[:64]))

    def count(self, s: Session) -> int:
        """Stored failures (all addresses), for tests and the admin's curiosity."""
        return int(s.scalar(select(func.count()).select_from(LoginFailure)) or 0)
