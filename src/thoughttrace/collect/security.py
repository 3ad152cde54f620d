"""Signed cookies, CSRF tokens and the admin check.

The participant cookie carries only the participant's public id, signed with the server secret
(itsdangerous), so it cannot be forged or pointed at someone else. The CSRF token is an HMAC of that
id: a page from this server knows it, a forged post from another site does not.
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeSerializer

PARTICIPANT_COOKIE = "tt_participant"
ADMIN_COOKIE = "tt_admin"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


class Signer:
    def __init__(self, secret_key: str, admin_token: str) -> None:
        self._participant = URLSafeSerializer(secret_key, salt="thoughttrace.participant")
        self._admin = URLSafeSerializer(secret_key, salt="thoughttrace.admin")
        self._secret = secret_key.encode()
        self._admin_token = admin_token
        self._admin_fingerprint = hashlib.sha256(admin_token.encode()).hexdigest()[:16]

    # participants
    def participant_cookie(self, public_id: str) -> str:
        return self._participant.dumps(public_id)

    def read_participant_cookie(self, value: str | None) -> str | None:
        if not value:
            return None
        try:
            out = self._participant.loads(value)
        except BadSignature:
            return None
        return out if isinstance(out, str) else None

    def csrf_token(self, subject: str) -> str:
        return hmac.new(self._secret, f"csrf:{subject}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, subject: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(subject), str(token))

    # admin
    def admin_token_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token).encode(), self._admin_token.encode())

    def admin_cookie(self) -> str:
        # bound to the token: rotating THOUGHTTRACE_ADMIN_TOKEN logs every admin out
        return self._admin.dumps({"admin": self._admin_fingerprint})

    def admin_cookie_ok(self, value: str | None) -> bool:
        if not value:
            return False
        try:
            data = self._admin.loads(value)
        except BadSignature:
            return False
        return isinstance(data, dict) and data.get("admin") == self._admin_fingerprint


class LoginThrottle:
    """Failed admin logins per client address: after `limit` failures within `window` seconds, that
    address is refused (429) until the oldest failure ages out. In memory, per worker process; the
    admin token is long and random, so this only has to make guessing slow, not impossible to retry."""

    def __init__(self, limit: int = 5, window: float = 15 * 60) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, who: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(who, []) if now - t < self.window]
        if times:
            self._failures[who] = times
        else:
            self._failures.pop(who, None)
        return times

    def retry_after(self, who: str, now: float | None = None) -> int:
        """Seconds until `who` may try again (0: now)."""
        import time

        now = time.monotonic() if now is None else now
        times = self._recent(who, now)
        if len(times) < self.limit:
            return 0
        return max(1, int(self.window - (now - times[-self.limit])) + 1)

    def failed(self, who: str, now: float | None = None) -> None:
        import time

        now = time.monotonic() if now is None else now
        self._recent(who, now)
        self._failures.setdefault(who, []).append(now)
        if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest half
            for key in list(self._failures)[:5_000]:
                self._failures.pop(key, None)

    def succeeded(self, who: str) -> None:
        self._failures.pop(who, None)
