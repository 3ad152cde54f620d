"""Researcher pages behind the admin token: progress, conversation viewer, export, withdrawal, payments.

Scripts send `Authorization: Bearer TOKEN`; people log in once at /admin/login and get a signed cookie.
Cookie-authenticated posts also need the CSRF token (a bearer header cannot be forged by another site).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import flow
from .context import AppContext, ctx_of
from .db import Conversation, Message, Participant
from .export import EXPORT_FORMAT_VERSION, iter_export
from .render import render_markdown
from .routes_participant import redirect, run_db
from .security import ADMIN_COOKIE, CSRF_FIELD

router = APIRouter(prefix="/admin")
ADMIN_CSRF_SUBJECT = "admin"


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def require_admin(request: Request, form: Any = None) -> AppContext:
    ctx = ctx_of(request)
    token = _bearer(request)
    if token is not None:
        if not ctx.signer.admin_token_ok(token):
            raise flow.FlowError(401, "wrong admin token")
        return ctx
    if not ctx.signer.admin_cookie_ok(request.cookies.get(ADMIN_COOKIE)):
        raise flow.FlowError(401, "admin login required", redirect="/admin/login")
    if form is not None and not ctx.signer.csrf_ok(ADMIN_CSRF_SUBJECT, form.get(CSRF_FIELD)):
        raise flow.FlowError(403, "this form has expired; reload the admin page")
    return ctx


@router.get("/login")
async def login_page(request: Request) -> Response:
    return ctx_of(request).render(request, "admin/login.html", error=None)


@router.post("/login")
async def login_post(request: Request) -> Response:
    ctx = ctx_of(request)
    form = await request.form()
    if not ctx.signer.admin_token_ok(str(form.get("token", ""))):
        return ctx.render(request, "admin/login.html", status_code=401, error="wrong token")
    resp = redirect("/admin")
    resp.set_cookie(ADMIN_COOKIE, ctx.signer.admin_cookie(), httponly=True, samesite="strict",
                    secure=ctx.settings.secure_cookies, max_age=60 * 60 * 12)
    return resp


@router.get("")
async def progress_page(request: Request) -> Response:
    ctx = require_admin(request)
    stats = await run_db(ctx, flow.progress)
    return ctx.render(request, "admin/progress.html", stats=stats, csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT))


@router.get("/api/progress")
async def progress_api(request: Request) -> Response:
    ctx = require_admin(request)
    return JSONResponse(await run_db(ctx, flow.progress))


def _participants(s: Session) -> list[dict[str, Any]]:
    counts = dict(s.execute(
        select(Conversation.participant_id, func.count(Message.id))
        .join(Message, Message.conversation_id == Conversation.id, isouter=True)
        .group_by(Conversation.participant_id)).all())
    rows = []
    for p in s.scalars(select(Participant).order_by(Participant.id)):
        convs = s.scalars(select(Conversation).where(Conversation.participant_id == p.id)
                          .order_by(Conversation.task_index)).all()
        rows.append({"user": f"user{p.id}", "public_id": p.public_id, "stage": p.stage,
                     "created_at": p.created_at, "messages": counts.get(p.id, 0),
                     "conversations": [(c.public_id, c.task_index + 1, c.model_key) for c in convs]})
    return rows


@router.get("/conversations")
async def conversations_page(request: Request) -> Response:
    ctx = require_admin(request)
    rows = await run_db(ctx, _participants)
    return ctx.render(request, "admin/conversations.html", rows=rows, csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT))


@router.get("/conversations/{cid}")
async def conversation_view(request: Request, cid: str) -> Response:
    ctx = require_admin(request)

    def work(s: Session) -> dict[str, Any]:
        conv = s.scalars(select(Conversation).where(Conversation.public_id == cid)).first()
        if conv is None:
            raise flow.FlowError(404, "no such conversation")
        p = s.get(Participant, conv.participant_id)
        msgs = flow.messages_of(s, conv)
        notes = flow.thoughts_of(s, msgs)
        return {"conv": conv, "user": f"user{p.id}" if p else "?",
                "messages": [{"role": m.role, "content": m.content, "time": m.created_at,
                              "html": render_markdown(m.content) if m.role == "assistant" else None,
                              "note": notes.get(m.id)} for m in msgs]}

    return ctx.render(request, "admin/conversation.html", **await run_db(ctx, work))


@router.get("/export.jsonl")
async def export_jsonl(request: Request) -> Response:
    """The released schema, one conversation a line, each validated by `thoughttrace.data.Conversation`."""
    ctx = require_admin(request)
    include_prolific = request.query_params.get("include_prolific") in ("1", "true", "yes")
    completed_only = request.query_params.get("completed_only") in ("1", "true", "yes")
    lines = await run_db(ctx, lambda s: [json.dumps(r, ensure_ascii=False) + "\n" for r in iter_export(
        s, include_prolific=include_prolific, completed_only=completed_only)])

    def body() -> Iterator[str]:
        yield from lines

    return StreamingResponse(body(), media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="{ctx.study.name}-thoughttrace.jsonl"',
        "X-ThoughtTrace-Format-Version": str(EXPORT_FORMAT_VERSION)})


@router.get("/payments.csv")
async def payments_csv(request: Request) -> Response:
    """Prolific ids of participants, with their stage, for paying them (only this file holds the ids)."""
    ctx = require_admin(request)

    def work(s: Session) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["prolific_pid", "study_id", "session_id", "stage", "completed", "completed_at"])
        for p in s.scalars(select(Participant).where(Participant.prolific_pid.is_not(None)).order_by(Participant.id)):
            w.writerow([p.prolific_pid, p.study_id or "", p.session_id or "", p.stage, int(p.stage == "done"),
                        p.completed_at.isoformat() if p.completed_at else ""])
        return buf.getvalue()

    return Response(await run_db(ctx, work), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="payments.csv"'})


@router.post("/participants/{public_id}/withdraw")
async def withdraw(request: Request, public_id: str) -> Response:
    """Delete every row of one participant (by their public id, shown on the conversations page)."""
    form = None if _bearer(request) else await request.form()
    ctx = require_admin(request, form)  # cookie sessions must also send the CSRF token

    def work(s: Session) -> bool:
        p = flow.participant_by_public_id(s, public_id)
        return p is not None and flow.withdraw(s, p.id)

    if not await run_db(ctx, work):
        raise flow.FlowError(404, "no such participant")
    if form is not None:
        return RedirectResponse("/admin/conversations", status_code=303)
    return JSONResponse({"withdrawn": public_id})
