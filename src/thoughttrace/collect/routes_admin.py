"""Researcher pages behind the admin token: live monitor, participants (search, filters, paging, quality
flags), conversation viewer, JSONL/CSV exports, withdrawal (confirmed, audited), Prolific actions, logout.

Scripts send `Authorization: Bearer TOKEN`; people log in once at /admin/login and get a signed cookie.
Cookie-authenticated posts also need the CSRF token (a bearer header cannot be forged by another site).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import admin_auth, flow, queries
from .bundle import BUNDLE_FORMAT_VERSION, ZipSink, bundle_pieces, completed
from .context import AppContext, ctx_of
from .db import Conversation, Participant
from .export import EXPORT_FORMAT_VERSION, iter_export
from .payments import Ledger, pay_bonuses, review
from .prolific import REJECTION_CATEGORIES, Action, ProlificClient, ProlificError
from .quality import FLAGS
from .reads import run_snapshot, snapshot_pieces
from .render import render_markdown
from .researcher import (
    PAGE_SIZE,
    Filters,
    audit_log,
    events_csv_pieces,
    log_admin_action,
    participant_rows,
    participants_csv_pieces,
    set_study_state,
    study_state_of,
)
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
        admin_auth.check_bearer(ctx, request, token)  # throttled and logged with the login form's failures
        return ctx
    session = ctx.signer.admin_cookie_session(request.cookies.get(ADMIN_COOKIE))
    if session is None or not admin_auth.session_live(ctx, session):
        raise flow.FlowError(401, "admin login required", redirect="/admin/login")
    if form is not None and not ctx.signer.csrf_ok(ADMIN_CSRF_SUBJECT, form.get(CSRF_FIELD)):
        raise flow.FlowError(403, "this form has expired; reload the admin page")
    return ctx


@router.get("/login")
async def login_page(request: Request) -> Response:
    return ctx_of(request).render(request, "admin/login.html", error=None)


@router.post("/login")
async def login_post(request: Request) -> Response:
    """Log in with the token; 5 failures from one address within 15 minutes lock it out for a while (429),
    counted in the database over every worker."""
    ctx = ctx_of(request)
    form = await request.form()
    who = admin_auth.client_address(request)
    token = str(form.get("token", ""))

    def attempt(s: Session) -> tuple[int, bool, str | None]:
        """(seconds to wait, token right, new session): one locked transaction (see throttle.py)."""
        wait, ok = admin_auth.attempt(ctx, s, who, token, "login form")
        return wait, ok, admin_auth.start_session(s) if ok else None

    wait, ok, session = await run_db(ctx, attempt)
    if wait:
        resp = ctx.render(request, "admin/login.html", status_code=429,
                          error=f"too many failed logins from your address; try again in {wait} s")
        resp.headers["Retry-After"] = str(wait)
        return resp
    if not ok:
        return ctx.render(request, "admin/login.html", status_code=401, error="wrong token")
    resp = redirect("/admin")
    assert session is not None
    resp.set_cookie(ADMIN_COOKIE, ctx.signer.admin_cookie(session), httponly=True, samesite="strict",
                    secure=ctx.settings.secure_cookies, max_age=admin_auth.SESSION_SECONDS)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    ctx = require_admin(request, form)
    session = ctx.signer.admin_cookie_session(request.cookies.get(ADMIN_COOKIE))
    if session is not None:  # ended on the server: a kept copy of the cookie opens nothing
        await run_db(ctx, lambda s: admin_auth.end_session(s, session))
    resp = redirect("/admin/login")
    resp.delete_cookie(ADMIN_COOKIE, httponly=True, samesite="strict", secure=ctx_of(request).settings.secure_cookies)
    return resp


@router.get("")
async def progress_page(request: Request) -> Response:
    ctx = require_admin(request)
    stats = await run_db(ctx, flow.progress)
    state = await run_db(ctx, study_state_of)
    return ctx.render(request, "admin/progress.html", stats=stats, csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT),
                      study_state=state)


@router.get("/api/progress")
async def progress_api(request: Request) -> Response:
    ctx = require_admin(request)
    return JSONResponse(await run_db(ctx, flow.progress))


def _filters(request: Request) -> Filters:
    q = request.query_params
    try:
        page = max(1, int(q.get("page", "1")))
    except ValueError:
        raise flow.FlowError(400, "page must be a whole number (1, 2, ...)") from None
    flag = q.get("flag", "")
    if flag and flag not in FLAGS:
        raise flow.FlowError(400, f"unknown quality flag {flag!r}; use one of: {', '.join(FLAGS)}")
    stage = q.get("stage", "")
    if stage and stage not in flow.STAGES:
        raise flow.FlowError(400, f"unknown stage {stage!r}; use one of: {', '.join(flow.STAGES)}")
    return Filters(q=q.get("q", "").strip()[:64], stage=stage, flag=flag, model=q.get("model", "")[:64], page=page)


@router.get("/conversations")
async def conversations_page(request: Request) -> Response:
    """Participants with Prolific ids, search (id, PID, session), filters (stage, flag, model) and paging."""
    ctx = require_admin(request)
    f = _filters(request)
    rows, total = await run_snapshot(ctx.db, lambda s: participant_rows(s, ctx.study, f))
    pages = max(1, -(-total // PAGE_SIZE))
    return ctx.render(request, "admin/conversations.html", rows=rows, total=total, filters=f, pages=pages,
                      flags=FLAGS, stages=flow.STAGES, models=[m.key for m in ctx.study.models],
                      csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT))


@router.get("/api/participants")
async def participants_api(request: Request) -> Response:
    ctx = require_admin(request)
    f = _filters(request)
    rows, total = await run_snapshot(ctx.db, lambda s: participant_rows(s, ctx.study, f))
    out = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items() if k != "conversations"}
           for r in rows]
    return JSONResponse({"total": total, "page": f.page, "page_size": PAGE_SIZE, "participants": out})


@router.get("/conversations/{cid}")
async def conversation_view(request: Request, cid: str) -> Response:
    ctx = require_admin(request)

    def work(s: Session) -> dict[str, Any]:
        conv = s.scalars(select(Conversation).where(Conversation.public_id == cid)).first()
        if conv is None:
            raise flow.FlowError(404, "no such conversation")
        p = s.get(Participant, conv.participant_id)
        msgs = queries.messages_of(s.connection(), conv.id)
        notes = queries.thoughts_of(s.connection(), [m.id for m in msgs])
        return {"conv": conv, "user": f"user{p.id}" if p else "?",
                "messages": [{"role": m.role, "content": m.content, "time": m.created_at,
                              "html": render_markdown(m.content) if m.role == "assistant" else None,
                              "note": notes.get(m.id)} for m in msgs]}

    return ctx.render(request, "admin/conversation.html", **await run_db(ctx, work),
                      csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT))


@router.get("/export.jsonl")
async def export_jsonl(request: Request) -> Response:
    """The released schema, one conversation a line, each validated by `thoughttrace.data.Conversation`."""
    ctx = require_admin(request)
    include_prolific = request.query_params.get("include_prolific") in ("1", "true", "yes")
    completed_only = request.query_params.get("completed_only") in ("1", "true", "yes")

    def lines(s: Session) -> Iterator[str]:
        for r in iter_export(s, include_prolific=include_prolific, completed_only=completed_only, study=ctx.study,
                             batch=2):
            yield json.dumps(r, ensure_ascii=False) + "\n"

    # read from a snapshot in pieces: participants are never kept waiting by an export (see reads.py)
    return StreamingResponse(snapshot_pieces(ctx.db, lines), media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="{ctx.study.name}-thoughttrace.jsonl"',
        "X-ThoughtTrace-Format-Version": str(EXPORT_FORMAT_VERSION)})


@router.get("/export.zip")
async def export_zip(request: Request) -> Response:
    """The dataset that stands alone: conversations, participants (screening and survey answers), the
    design, the study versions and the codebook (see bundle.py), read from a snapshot in pieces."""
    ctx = require_admin(request)
    include_prolific = request.query_params.get("include_prolific") in ("1", "true", "yes")
    completed_only = request.query_params.get("completed_only") in ("1", "true", "yes")
    versions = ctx.versions
    studies = versions.known() if versions is not None else {}
    sink = ZipSink()
    async for name, text in snapshot_pieces(ctx.db, lambda s: bundle_pieces(
            s, studies, ctx.study, versions.current_id if versions else None, include_prolific=include_prolific,
            completed_only=completed_only, batch=2)):
        sink.add(name, text)
    return Response(sink.finish(), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{ctx.study.name}-dataset.zip"',
        "X-ThoughtTrace-Format-Version": str(BUNDLE_FORMAT_VERSION)})


@router.post("/study/state")
async def study_state_post(request: Request) -> Response:
    """Pause, close or reopen the study (`state` = paused | closed | open): new entries get a clear page,
    people already in the study finish. Audited."""
    bearer = _bearer(request) is not None
    form: Any = await request.form() if not bearer else {}
    if bearer:
        try:
            form = json.loads(await request.body() or b"{}")
        except (ValueError, RecursionError):
            form = {}
        form = form if isinstance(form, dict) else {}
    ctx = require_admin(request, None if bearer else form)
    state = str(form.get("state", ""))
    note = str(form.get("note", ""))[:500]
    await run_db(ctx, lambda s: set_study_state(s, state, note, actor="bearer token" if bearer else "admin page"))
    if not bearer:
        return RedirectResponse("/admin", status_code=303)
    return JSONResponse({"state": state})


@router.get("/payments.csv")
async def payments_csv(request: Request) -> Response:
    """Prolific ids of participants, with their stage, for paying them (only this file holds the ids)."""
    ctx = require_admin(request)

    def work(s: Session) -> Iterator[str]:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["prolific_pid", "study_id", "session_id", "stage", "completed", "completed_at", "withdrawn",
                    "withdrawn_at"])
        for n, p in enumerate(s.scalars(select(Participant).where(Participant.prolific_pid.is_not(None))
                                        .order_by(Participant.id).execution_options(yield_per=200)), start=1):
            w.writerow([p.prolific_pid, p.study_id or "", p.session_id or "", p.stage, int(completed(p)),
                        p.completed_at.isoformat() if p.completed_at else "", int(p.stage == "withdrawn"),
                        p.withdrawn_at.isoformat() if p.withdrawn_at else ""])
            if n % 200 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return StreamingResponse(snapshot_pieces(ctx.db, work), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="payments.csv"'})


@router.get("/participants.csv")
async def participants_csv_route(request: Request) -> Response:
    """Participants with stage, models by position, timing and quality-flag columns (holds Prolific ids)."""
    ctx = require_admin(request)
    return StreamingResponse(snapshot_pieces(ctx.db, lambda s: participants_csv_pieces(s, ctx.study, batch=3)),
                             media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{ctx.study.name}-participants.csv"'})


@router.get("/events.csv")
async def events_csv_route(request: Request) -> Response:
    ctx = require_admin(request)
    return StreamingResponse(snapshot_pieces(ctx.db, events_csv_pieces), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{ctx.study.name}-events.csv"'})


@router.get("/participants/{public_id}/withdraw")
async def withdraw_page(request: Request, public_id: str) -> Response:
    """The confirmation page: who (Prolific id), what will be deleted, what is kept."""
    ctx = require_admin(request)

    def work(s: Session) -> dict[str, Any]:
        p = queries.participant_by_public_id(s.connection(), public_id)
        if p is None:
            raise flow.FlowError(404, "no such participant")
        rows, _ = participant_rows(s, ctx.study, Filters(q=p.public_id), page_size=None)
        return next(r for r in rows if r["public_id"] == p.public_id)

    row = await run_db(ctx, work)
    return ctx.render(request, "admin/withdraw.html", row=row, csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT))


@router.post("/participants/{public_id}/withdraw")
async def withdraw(request: Request, public_id: str) -> Response:
    """Delete a participant's answers after confirmation (`confirm=yes`); the participant row stays,
    marked withdrawn (payment record), and the audit log says who, when and what was deleted."""
    bearer = _bearer(request) is not None
    form: Any = None
    if bearer:
        data = await request.body()
        try:
            form = json.loads(data) if data else {}
        except (ValueError, RecursionError):
            form = {}
        if not isinstance(form, dict):
            form = {}
    else:
        form = await request.form()
    ctx = require_admin(request, None if bearer else form)  # cookie sessions must also send the CSRF token
    if str(form.get("confirm", "")) != "yes":
        raise flow.FlowError(409, "withdrawal needs confirmation: open the participant's withdraw page and confirm "
                                  "(scripts: send confirm=yes)", redirect=f"/admin/participants/{public_id}/withdraw")
    reason = str(form.get("reason", ""))[:500]

    def work(s: Session) -> bool:
        p = queries.participant_by_public_id(s.connection(), public_id)
        if p is None or p.stage == "withdrawn":
            return False
        return flow.withdraw(s, p.id, reason=reason, actor="bearer token" if bearer else "admin page")

    if not await run_db(ctx, work):
        raise flow.FlowError(404, "no such participant (or already withdrawn)")
    if not bearer:
        return RedirectResponse("/admin/conversations", status_code=303)
    return JSONResponse({"withdrawn": public_id})


# ---------------------------------------------------------------------------------------------- Prolific
def _prolific_client(ctx: AppContext, dry_run: bool, log: list[Action]) -> ProlificClient:
    try:
        return ProlificClient.from_env(dry_run=dry_run, on_action=log.append)
    except ProlificError as exc:
        raise flow.FlowError(400, str(exc)) from None


def _log_actions(ctx: AppContext, actions: list[Action]) -> Any:
    def work(s: Session) -> None:
        for a in actions:
            log_admin_action(s, f"prolific_{a.action}", json.dumps(
                {"dry_run": a.dry_run, "method": a.method, "path": a.path, "body": a.body, "status": a.status,
                 "response": a.response}, default=str)[:4000])

    return run_db(ctx, work)


@router.get("/prolific")
async def prolific_page(request: Request) -> Response:
    ctx = require_admin(request)
    log = await run_db(ctx, lambda s: audit_log(s, 50))
    return ctx.render(request, "admin/prolific.html", csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT), result=None,
                      error=None, categories=REJECTION_CATEGORIES, log=log, dry_run=True)


@router.post("/prolific")
async def prolific_post(request: Request) -> Response:
    """Approve / reject / bonus from the admin page; a dry run unless 'send for real' is ticked."""
    form = await request.form()
    ctx = require_admin(request, form)
    dry_run = form.get("execute") != "yes"
    actions: list[Action] = []
    client = _prolific_client(ctx, dry_run, actions)
    action = str(form.get("action", ""))
    ids = [x.strip() for x in str(form.get("ids", "")).replace(",", "\n").splitlines() if x.strip()]
    result: Any = None
    error: str | None = None
    ledger = Ledger(ctx.db)  # every real action is recorded before it is sent: never twice (payments.py)

    def send() -> Any:  # in a thread: Prolific's answers must not hold up the participants' event loop
        if action == "approve":
            if not ids:
                raise ProlificError("list the submission ids (SESSION_ID) to approve")
            return review(client, ledger, "approve", ids)
        if action == "reject":
            if len(ids) != 1:
                raise ProlificError("reject one submission at a time (one submission id)")
            return review(client, ledger, "reject", ids, message=str(form.get("message", "")),
                          category=str(form.get("category", "")))
        if action == "bonus":
            pairs = []
            for line in str(form.get("ids", "")).splitlines():
                pid, _, amount = line.strip().replace(",", " ").partition(" ")
                if pid and not amount.strip():
                    raise ProlificError(f"bonus line {line.strip()!r}: write 'PARTICIPANT_ID AMOUNT', e.g. 'abc123 1.50'")
                if pid:
                    pairs.append((pid, amount.strip()))
            return pay_bonuses(client, ledger, str(form.get("study_id", "")), pairs)
        raise ProlificError("choose an action: approve, reject or bonus")

    try:
        report = await asyncio.to_thread(send)
        result = report.as_dict()
        if report.failed:
            error = "; ".join(f"{o.target}: {o.note}" for o in report.failed)[:2000]
    except ProlificError as exc:
        error = str(exc)
    await _log_actions(ctx, actions)
    log = await run_db(ctx, lambda s: audit_log(s, 50))
    return ctx.render(request, "admin/prolific.html", status_code=200 if error is None else 400,
                      csrf=ctx.signer.csrf_token(ADMIN_CSRF_SUBJECT), result=json.dumps(result, indent=1),
                      error=error, categories=REJECTION_CATEGORIES, log=log, dry_run=dry_run)
