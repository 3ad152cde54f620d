"""Signed cookies, CSRF tokens and the admin check.

The participant cookie carries only the participant's public id, signed with the server secret
(itsdangerous), so it cannot be forged or pointed at someone else. The CSRF token is an HMAC of that
id: a page from this server knows it, a forged post from another site does not.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

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
        # every participant request checks its cookie and its CSRF token: both are pure functions of the
        # string and the secret, so each answer is kept (bounded) instead of re-verifying the HMAC each time
        self._read_cookie = lru_cache(maxsize=8192)(self._read_cookie_uncached)
        self._csrf_cached = lru_cache(maxsize=8192)(self._csrf_token_uncached)

    # participants
    def participant_cookie(self, public_id: str) -> str:
        return self._participant.dumps(public_id)

    def read_participant_cookie(self, value: str | None) -> str | None:
        """The participant's public id from a cookie this server signed; None for no cookie or a bad one."""
        if not value or len(value) > 512:
            return None
        return self._read_cookie(value)

    def _read_cookie_uncached(self, value: str) -> str | None:
        try:
            out = self._participant.loads(value)
        except BadSignature:
            return None
        return out if isinstance(out, str) else None

    def csrf_token(self, subject: str) -> str:
        """The CSRF token of a participant (an HMAC of the public id)."""
        return self._csrf_cached(subject)

    def _csrf_token_uncached(self, subject: str) -> str:
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
