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
#: 32 letters and digits without the look-alikes 0/O and 1/I
RESUME_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


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

    def resume_code(self, public_id: str) -> str:
        """The code a participant is shown to resume on another device: an HMAC of their public id (nothing
        stored; 50 bits, in groups of five letters/digits that are easy to copy: no 0/O, 1/I)."""
        digest = hmac.new(self._secret, f"resume:{public_id}".encode(), hashlib.sha256).digest()
        value = int.from_bytes(digest[:8], "big")
        chars = []
        for _ in range(10):
            value, i = divmod(value, 32)
            chars.append(RESUME_ALPHABET[i])
        return "".join(chars[:5]) + "-" + "".join(chars[5:])

    def resume_code_ok(self, public_id: str, code: str | None) -> bool:
        given = "".join(ch for ch in str(code or "").upper() if ch.isalnum())
        want = self.resume_code(public_id).replace("-", "")
        return len(given) == len(want) and hmac.compare_digest(given.encode(), want.encode())

    def csrf_ok(self, subject: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(subject), str(token))

    # admin
    def admin_token_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token).encode(), self._admin_token.encode())

    def admin_cookie(self, session_token: str) -> str:
        """The admin cookie for one server-side session (`admin_sessions`), bound to the token too: rotating
        THOUGHTTRACE_ADMIN_TOKEN logs every admin out, and logging out ends that session on the server."""
        return self._admin.dumps({"admin": self._admin_fingerprint, "session": session_token})

    def admin_cookie_session(self, value: str | None) -> str | None:
        """The session token of a valid admin cookie (its signature and token binding checked), else None;
        the caller still checks the session is live in the database."""
        if not value or len(value) > 512:
            return None
        try:
            data = self._admin.loads(value)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("admin") != self._admin_fingerprint:
            return None
        session = data.get("session")
        return session if isinstance(session, str) and 16 <= len(session) <= 128 else None


def session_id(session_token: str) -> str:
    """What the database keeps of an admin session token (its sha256): a stolen table opens nothing."""
    return hashlib.sha256(session_token.encode()).hexdigest()
