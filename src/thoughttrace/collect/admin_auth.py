"""Who may open the researcher pages: the bearer token and the login form behind one throttle
(`throttle.LoginThrottle`), and server-side admin sessions, so that logging out ends a session for good.

Bearer checks run synchronously inside `require_admin` (called by every admin route): one indexed read of
`login_failures` per request, a write only on a failure. Admin requests are rare next to participants',
and a lockout must hold for a right token too (else a guess that comes back 429 vs 200 still leaks), so
this read cannot be skipped.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import Request
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .context import AppContext
from .db import AdminSession, utcnow
from .flow import FlowError
from .security import session_id

#: how long an admin login lasts (the cookie's max-age too)
SESSION_SECONDS = 12 * 60 * 60


def client_address(request: Request) -> str:
    """The client's address as the server sees it: the TCP peer, or what a configured proxy reported
    (uvicorn believes X-Forwarded-For only from THOUGHTTRACE_TRUSTED_PROXIES and takes its rightmost
    address that is not one of them); never a header the client chose."""
    return request.client.host if request.client else "unknown"


def attempt(ctx: AppContext, s: Session, who: str, token: str, via: str) -> tuple[int, bool]:
    """(seconds to wait, token right) of one credential, checked and recorded in one locked transaction."""
    ok = ctx.signer.admin_token_ok(token)
    wait = ctx.login_throttle.attempt(s, who, token, ok, via)
    return wait, ok and not wait


def check_bearer(ctx: AppContext, request: Request, token: str) -> None:
    """A bearer token: throttled and logged like the login form (429 when locked out, 401 when wrong)."""
    with ctx.db.session() as s:
        wait, ok = attempt(ctx, s, client_address(request), token, "bearer token")
    if wait:
        raise FlowError(429, f"too many failed admin logins from your address or with this token; try again in "
                             f"{wait} s")
    if not ok:
        raise FlowError(401, "wrong admin token")


def start_session(s: Session) -> str:
    """A new admin session; returns the token the cookie carries (the database keeps its hash)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    s.add(AdminSession(id=session_id(token), created_at=now, expires_at=now + timedelta(seconds=SESSION_SECONDS)))
    return token


def session_live(ctx: AppContext, token: str) -> bool:
    with ctx.db.session() as s:
        row = s.get(AdminSession, session_id(token))
        return row is not None and row.revoked_at is None and row.expires_at > utcnow()


def end_session(s: Session, token: str) -> None:
    """Log out: the session is revoked in the database, so a copy of the cookie opens nothing afterwards."""
    s.execute(update(AdminSession).where(AdminSession.id == session_id(token)).values(revoked_at=utcnow()))
    # old sessions are forgotten here (logouts are rare): the table stays small without a job
    s.execute(delete(AdminSession).where(AdminSession.expires_at < utcnow() - timedelta(days=1)))


def sessions_open(s: Session) -> int:
    """Live admin sessions (for tests and the curious)."""
    now = utcnow()
    return len(list(s.scalars(select(AdminSession.id).where(AdminSession.revoked_at.is_(None),
                                                             AdminSession.expires_at > now))))
