"""Participant pages and the chat API. Every route finds the participant from the signed cookie and
touches only that participant's rows; ids in paths are checked for ownership (404 when not theirs).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from thoughttrace.llm import LLMError
from thoughttrace.llm.types import Generation

from . import admin_auth, flow, queries
from .context import AppContext, ctx_of
from .deps import Reader, Writer, json_body, read_json, run_db, run_tx
from .queries import ConversationRow, MessageRow, ParticipantRow
from .render import render_markdown
from .schemas import (
    ChatStateOut,
    EmptyIn,
    MessageIn,
    MessageOut,
    PostedMessageOut,
    PostedReactionOut,
    ReactionIn,
    ReactionOut,
    typing_dict,
)
from .security import PARTICIPANT_COOKIE

router = APIRouter()
__all__ = ["read_json", "redirect", "router", "run_db", "run_tx", "where_now"]


def where_now(c: Connection, p: ParticipantRow) -> str:
    """The page a participant belongs on: how reloading or coming back resumes the study."""
    if p.stage in ("chat", "post_task"):
        conv = flow.current_conversation(c, p)
        if conv is not None:
            if p.stage == "chat" and flow.close_if_expired(c, p, conv):
                return f"/c/{conv.public_id}/summary"
            return f"/c/{conv.public_id}" if p.stage == "chat" else f"/c/{conv.public_id}/summary"
    return {"consent": "/consent", "screening": "/screening", "tutorial": "/tutorial", "task": "/task",
            "survey": "/survey", "done": "/done", "declined": "/end", "screened_out": "/end",
            "timed_out": "/end", "full": "/end"}.get(p.stage, "/consent")


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --------------------------------------------------------------------------------------------- entry
@router.get("/")
async def index(request: Request) -> Response:
    ctx = ctx_of(request)
    if ctx.signer.read_participant_cookie(request.cookies.get(PARTICIPANT_COOKIE)):
        return redirect("/next")
    return ctx.render(request, "index.html", anonymous=ctx.study.anonymous_entry)


@router.get("/start")
async def start(request: Request) -> Response:
    """The entry link: `/start?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...`, or bare for an anonymous id."""
    q = request.query_params
    return await _enter(request, q.get("PROLIFIC_PID"), q.get("STUDY_ID"), q.get("SESSION_ID"), proven=False)


@router.post("/resume")
async def resume_post(request: Request) -> Response:
    """Resume on another device with the resume code the study showed (throttled like admin logins)."""
    ctx = ctx_of(request)
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1].rstrip("/") != request.headers.get("host", ""):
        # no participant cookie yet, so no CSRF token: another site's form must not log a visitor into a session
        raise flow.FlowError(403, "this form did not come from the study's own page; open the study link again")
    form = await request.form()
    pid, study_id, session_id = (str(form.get(k, "")) or None for k in ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"))
    if not pid:
        raise flow.FlowError(400, "open the study from its Prolific link, then enter your resume code")
    code, who = str(form.get("resume_code", ""))[:64], admin_auth.client_address(request)

    def check(s: Any) -> tuple[int, bool]:
        p = queries.participant_by_prolific_pid(s.connection(), flow.check_external_id(pid, "PROLIFIC_PID") or "")
        ok = p is not None and ctx.signer.resume_code_ok(p.public_id, code)
        # keyed by the address and by the Prolific id: guesses at one person's code count from every address
        wait = ctx.login_throttle.attempt(s, f"resume@{who}", f"resume:{pid}", ok, "resume code")
        return wait, ok and not wait

    wait, ok = await run_db(ctx, check)
    if wait or not ok:
        resp = ctx.render(request, "resume.html", status_code=429 if wait else 403, pid=pid, study_id=study_id or "",
                          session_id=session_id or "",
                          error=f"too many wrong codes; try again in {wait} s" if wait else "that code is not right")
        if wait:
            resp.headers["Retry-After"] = str(wait)
        return resp
    return await _enter(request, pid, study_id, session_id, proven=True)


def resume_code_of(request: Request) -> str:
    """The resume code of the participant of this (already checked) cookie, shown on their own pages only."""
    ctx = ctx_of(request)
    public_id = ctx.signer.read_participant_cookie(request.cookies.get(PARTICIPANT_COOKIE))
    return ctx.signer.resume_code(public_id) if public_id else ""


def _may_enter(c: Connection, pid: str | None, current: str | None, session_id: str | None) -> bool:
    """May this browser open the participant of `pid`? A Prolific id is no secret (researchers see it, it
    travels in URLs): only the device holding their signed cookie, or Prolific's SESSION_ID matching the
    stored one, opens an existing participant; anyone else is asked for the resume code."""
    pid = flow.check_external_id(pid, "PROLIFIC_PID")
    if not pid:
        return True
    existing = queries.participant_by_prolific_pid(c, pid)
    if existing is None or existing.stage == "withdrawn" or existing.public_id == current:
        return True
    return bool(session_id) and existing.session_id == session_id


async def _enter(request: Request, pid: str | None, study_id: str | None, session_id: str | None, *,
                 proven: bool) -> Response:
    ctx = ctx_of(request)
    current = ctx.signer.read_participant_cookie(request.cookies.get(PARTICIPANT_COOKIE))

    def work(c: Connection) -> tuple[str, str] | None:
        if not proven and not _may_enter(c, pid, current, session_id):
            return None
        if proven:
            known = queries.participant_by_prolific_pid(c, pid or "")
            if known is not None:
                flow.log_event(c, known, "resume_code", "resumed on another device with the resume code")
        p = queries.participant_by_public_id(c, current) if current and not pid else None
        if p is not None and p.stage == "withdrawn":
            p = None
        if p is None:
            p = flow.find_or_create_participant(c, pid, study_id, session_id,
                                                anonymous_entry=ctx.study.anonymous_entry, study=ctx.study,
                                                study_version=ctx.versions.current_id if ctx.versions else None)
        if p.stage == "withdrawn":
            raise flow.FlowError(403, "your data was withdrawn from this study; thank you for your time")
        flow.check_time_limit(c, p, ctx.study_of(p, c))
        return p.public_id, where_now(c, p)

    entered = await run_tx(ctx, work)
    if entered is None:  # someone else's Prolific id, or the same person on a new device: the code first
        return ctx.render(request, "resume.html", status_code=403, pid=pid or "", study_id=study_id or "",
                          session_id=session_id or "", error=None)
    public_id, target = entered
    resp = redirect(target)
    resp.set_cookie(PARTICIPANT_COOKIE, ctx.signer.participant_cookie(public_id), httponly=True, samesite="lax",
                    secure=ctx.settings.secure_cookies, max_age=60 * 60 * 24 * 14)
    return resp


@router.get("/next")
async def next_page(you: Reader) -> Response:
    return redirect(await you.run(where_now))


# ------------------------------------------------------------------------------ consent and tutorial
def at_stage(you: Any, stage: str) -> Any:
    """Work for a page of one stage: (csrf token, None) there, or (token, where the participant belongs)."""

    def work(c: Connection, p: ParticipantRow) -> tuple[str, str | None]:
        return you.csrf(p), (None if p.stage == stage else where_now(c, p))

    return work


@router.get("/consent")
async def consent_page(request: Request, you: Reader) -> Response:
    csrf, elsewhere = await you.run(at_stage(you, "consent"))
    return redirect(elsewhere) if elsewhere else you.ctx.render(request, "consent.html", csrf=csrf,
                                                                                  study=you.study)


@router.post("/consent")
async def consent_post(you: Writer) -> Response:
    form = you.form or {}

    def work(c: Connection, p: ParticipantRow) -> str:
        if form.get("decision") == "decline" and you.study.allow_decline:
            flow.decline_consent(c, p)
            return where_now(c, p)
        if form.get("agree") != "yes":
            raise flow.FlowError(422, "please tick the box to agree before you start", redirect="/consent")
        flow.give_consent(c, p, you.study)
        return where_now(c, p)

    return redirect(await you.run(work))


async def _items_page(request: Request, you: Reader, stage: str, items: Any, heading: str, submit: str) -> Response:
    """An empty item form (screening or survey) for a participant at that stage; elsewhere, a redirect."""
    csrf, elsewhere = await you.run(at_stage(you, stage))
    if elsewhere:
        return redirect(elsewhere)
    if callable(items):  # the items of the participant's own study version
        items = items(you.study)
    return you.ctx.render(request, "items.html", csrf=csrf, items=items, values={}, problems={},
                          action=f"/{stage}", heading=heading, submit=submit, study=you.study)


@router.get("/screening")
async def screening_page(request: Request, you: Reader) -> Response:
    study = you.ctx.study
    return await _items_page(request, you, "screening", lambda st: st.screening, study.texts.screening_title,
                             "Continue")


@router.post("/screening")
async def screening_post(request: Request, you: Writer) -> Response:
    ctx, form = you.ctx, you.form or {}

    def work(c: Connection, p: ParticipantRow) -> tuple[str, dict[str, str], str]:
        problems = flow.submit_screening(c, p, you.study, form)
        return you.csrf(p), problems, where_now(c, p)

    csrf, problems, target = await you.run(work)
    if problems:
        return ctx.render(request, "items.html", status_code=422, csrf=csrf, items=you.study.screening,
                          values=flow.submitted_values(you.study.screening, form), problems=problems,
                          action="/screening", heading=you.study.texts.screening_title, submit="Continue",
                          study=you.study)
    return redirect(target)


@router.get("/tutorial")
async def tutorial_page(request: Request, you: Reader) -> Response:
    csrf, elsewhere = await you.run(at_stage(you, "tutorial"))
    return redirect(elsewhere) if elsewhere else you.ctx.render(request, "tutorial.html", csrf=csrf, wrong=[], given={},
                                                                                   study=you.study)


@router.post("/tutorial")
async def quiz_post(request: Request, you: Writer) -> Response:
    ctx, form = you.ctx, you.form or {}
    answers: dict[int, Any] = {}

    def work(c: Connection, p: ParticipantRow) -> tuple[str, list[int], str]:
        answers.update({i: form.get(f"q{i}") for i in range(len(you.study.quiz))})
        wrong = flow.submit_quiz(c, p, you.study, answers)
        return you.csrf(p), wrong, where_now(c, p)

    csrf, wrong, target = await you.run(work)
    if wrong:
        return ctx.render(request, "tutorial.html", status_code=422, csrf=csrf, wrong=wrong, given=answers,
                          study=you.study)
    return redirect(target)


# ------------------------------------------------------------------------------------------- tasks
@router.get("/task")
async def task_page(request: Request, you: Reader) -> Response:
    ctx = you.ctx

    def work(c: Connection, p: ParticipantRow) -> tuple[str, int, Any, str | None]:
        if p.stage != "task":
            return you.csrf(p), p.task_index, None, where_now(c, p)
        if flow.assign_design_row(c, p, you.study) is None:  # passed the quiz before rows were set there
            return you.csrf(p), p.task_index, None, where_now(c, p)  # ... and every row is full now
        return you.csrf(p), p.task_index, flow.task_spec_of(you.study, p), None

    csrf, index, spec, elsewhere = await you.run(work)
    if elsewhere:
        return redirect(elsewhere)
    return ctx.render(request, "task.html", csrf=csrf, task_number=index + 1,
                      instructions=spec.instructions or you.study.texts.task_prompt, fixed=spec.statement,
                      study=you.study, resume_code=resume_code_of(request))


@router.post("/task")
async def task_post(you: Writer) -> Response:
    form = you.form or {}
    return redirect(f"/c/{await you.run(lambda c, p: flow.start_task(c, p, you.study, form.get('task')).public_id)}")


# -------------------------------------------------------------------------------------------- chat
def message_view(m: MessageRow, thought: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"id": m.public_id, "role": m.role, "content": m.content,
                            "timestamp": m.created_at.isoformat()}
    if m.role == "assistant":
        view["html"] = render_markdown(m.content)
        view["finish_reason"] = m.finish_reason
        view["incomplete"] = m.finish_reason == "dropped"  # the page offers Retry for it
    view["note"] = None if thought is None else {"content": thought.content, "label": thought.label}
    return view


def chat_state(c: Connection, p: ParticipantRow, conv: ConversationRow, ctx: AppContext) -> dict[str, Any]:
    msgs = queries.messages_of(c, conv.id)
    notes = queries.thoughts_of(c, [m.id for m in msgs])
    return {
        "conversation": conv.public_id, "task": conv.task_statement, "task_number": conv.task_index + 1,
        "deadline": conv.deadline_at.isoformat(), "open": p.stage == "chat" and conv.ended_at is None,
        "messages": [message_view(m, notes.get(m.id)) for m in msgs],
        "awaiting_answer": flow.pending_user_message(msgs) is not None,
        "study_deadline": study_deadline(p, ctx.study_of(p, c)),
    }


def study_deadline(p: ParticipantRow, study: Any) -> str | None:
    """When the study's own time limit ends for this participant (the page warns before it and sends what
    is typed then, which is saved as a draft), or None without a limit."""
    limit = study.study_time_limit_minutes
    return None if limit is None else (p.created_at + timedelta(minutes=limit)).isoformat()


@router.get("/c/{cid}")
async def chat_page(request: Request, cid: str, you: Reader) -> Response:
    ctx = you.ctx

    def work(c: Connection, p: ParticipantRow, conv: ConversationRow) -> tuple[str, dict[str, Any] | None, str | None]:
        csrf = you.csrf(p)
        if flow.close_if_expired(c, p, conv) or p.stage != "chat" or conv.task_index != p.task_index:
            return csrf, None, where_now(c, p)
        return csrf, chat_state(c, p, conv, ctx), None

    csrf, state, elsewhere = await you.run_in(cid, work)
    if elsewhere:
        return redirect(elsewhere)
    assert state is not None
    return ctx.render(request, "chat.html", csrf=csrf, state=state, study=you.study,
                      reason_labels=you.study.reason_labels(), reaction_labels=you.study.reaction_labels(),
                      resume_code=resume_code_of(request))


@router.get("/api/c/{cid}/state", response_model=ChatStateOut)
async def chat_state_api(cid: str, you: Reader) -> Response:
    return JSONResponse(await you.run_in(cid, lambda c, p, conv: chat_state(c, p, conv, you.ctx)))


@router.post("/api/c/{cid}/messages", response_model=PostedMessageOut)
async def post_message(cid: str, you: Writer, body: MessageIn = json_body(MessageIn)) -> Response:
    """Store a user message with its reason (committed before the answer). Replays return the same id."""

    def work(c: Connection, p: ParticipantRow, conv: ConversationRow) -> tuple[dict[str, Any], bool] | None:
        if p.stage == "timed_out":  # the study's time limit passed just now: keep what was typed, as a draft
            draft = {"message": (body.content or "")[:you.study.max_message_chars],
                     "reason": (body.reason or "")[:you.study.max_note_chars]}
            if draft["message"].strip() or draft["reason"].strip():
                flow.log_event(c, p, "draft_at_time_limit", json.dumps(draft, ensure_ascii=False), conv)
            return None
        posted = flow.add_user_message(
            c, p, conv, you.study, content=body.content, reason=body.reason, reason_label=body.reason_label,
            client_key=body.idempotency_key, typing=typing_dict(body.reason_typing))
        return message_view(posted.message, posted.note), posted.created

    done = await you.run_in(cid, work)
    if done is None:
        return JSONResponse({"error": "the study's time limit has passed; what you typed was saved as a draft for "
                                      "the researchers", "redirect": "/end", "draft_saved": True}, status_code=409)
    view, created = done
    out = PostedMessageOut(message=MessageOut.model_validate(view), created=created)
    return JSONResponse(out.model_dump(), status_code=201 if created else 200)


@router.post("/api/c/{cid}/generate")
async def generate(cid: str, you: Writer, _body: EmptyIn = json_body(EmptyIn)) -> Response:
    """Answer the pending user message, streaming the model's text to the browser as it is generated.

    A failure before the first piece answers 502/504 with `retry: true`; a failure mid-stream ends the stream
    with an `error` event. Either way the user message stays stored and nothing half-written is saved, so the
    participant can press Retry. The answer is committed before the closing `done` event.
    """
    ctx = you.ctx

    def load(c: Connection, p: ParticipantRow, conv: ConversationRow) -> tuple[int, list[Any], MessageRow | None, MessageRow | None, str]:
        msgs = queries.messages_of(c, conv.id)
        pending = flow.pending_user_message(msgs)
        if pending is None and msgs and msgs[-1].finish_reason == "dropped" and p.stage == "chat" \
                and conv.ended_at is None and msgs[-1].id not in queries.thoughts_of(c, [msgs[-1].id]):
            # Retry of an answer cut off before its end marker: it is answered again (the cut text is logged)
            cut = msgs.pop()
            flow.log_event(c, p, "answer_dropped", f"cut off after {len(cut.content)} characters, answered "
                                                   f"again: {cut.content[:2000]}", conv)
            queries.delete_message(c, cut.id)
            pending = flow.pending_user_message(msgs)
        if pending is None:
            last = msgs[-1] if msgs and msgs[-1].role == "assistant" else None
            if last is None:
                raise flow.FlowError(409, "there is no message to answer yet")
            return conv.id, [], None, last, conv.model_key
        flow.require_open_chat(p, conv)
        entry, _model = ctx.model_for(you.study, conv.model_key)
        return conv.id, flow.build_model_request(entry.system_prompt, msgs), pending, None, conv.model_key

    conv_id, request_msgs, pending, done, model_key = await you.run_in(cid, load)
    if done is not None:  # already answered: a replay or a second tab
        return _replay(done)
    lock = ctx.generation_lock(conv_id)
    waited = lock.locked()
    await lock.acquire()
    handed_over = False
    try:
        def recheck(c: Connection) -> MessageRow | None:
            assert pending is not None
            return flow.answer_to(c, conv_id, pending)

        # only a request that waited behind another one here can find its answer written meanwhile; a
        # concurrent answer from another worker is caught when saving (add_assistant_message, unique seq)
        answered = await run_tx(ctx, recheck) if waited else None
        if answered is not None:
            return _replay(answered)
        entry, model = ctx.model_for(you.study, model_key)  # the participant's version: never a KeyError
        timeout = you.study.model_timeout_seconds
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        deadline = started_at + timeout
        seed = new_seed()  # a fresh sample per request; stored with the answer so it can be audited/replayed
        finals: list[Generation] = []  # the stream's closing record: how it ended (finish_reason)
        pieces = model.astream(request_msgs, max_tokens=entry.max_tokens, temperature=entry.temperature,
                               seed=seed, on_final=finals.append)

        async def next_piece() -> str | None:
            # a timeout scope, not wait_for: wait_for wraps every piece in a task of its own
            async with asyncio.timeout_at(deadline):
                return await anext(pieces, None)

        def failure_of(exc: Exception) -> tuple[int, str]:
            if isinstance(exc, TimeoutError):
                return 504, f"the assistant took longer than {timeout:g} s"
            return 502, f"the assistant could not answer ({type(exc).__name__})"

        def save(failure: tuple[int, str] | None, text: str) -> Callable[[Connection], MessageRow | None]:
            """The database work that ends a generation: the answer, or the failure logged."""

            def work(c: Connection) -> MessageRow | None:
                assert pending is not None
                if failure is not None:
                    queries.insert_event(c, queries.participant_of_conversation(c, conv_id), "model_error",
                                         failure[1], conv_id)
                    return None
                latency = int((loop.time() - started_at) * 1000)
                return flow.add_assistant_message(c, conv_id, pending, text, seed=seed, latency_ms=latency,
                                                  finish_reason=finish_reason_of(finals))

            return work

        try:
            first = await next_piece()
        except (TimeoutError, LLMError) as exc:
            failure = failure_of(exc)
            await pieces.aclose()
            await run_tx(ctx, save(failure, ""))
            return JSONResponse({"error": failure[1] + "; your message is saved, press Retry", "retry": True},
                                status_code=failure[0])

        async def body() -> AsyncIterator[bytes]:
            try:
                yield _event({"type": "start"})
                parts: list[str] = []
                failure: tuple[int, str] | None = None
                piece = first
                try:
                    while piece is not None:
                        parts.append(piece)
                        yield _event({"type": "delta", "text": piece})
                        piece = await next_piece()
                except (TimeoutError, LLMError) as exc:
                    failure = failure_of(exc)
                text = "".join(parts).strip() or "(the assistant returned an empty answer)"
                try:
                    saved = await run_tx(ctx, save(failure, text))
                except IntegrityError:  # another worker stored its answer first: that one is the answer
                    saved = await run_tx(ctx, recheck)
                if saved is None:
                    assert failure is not None
                    yield _event({"type": "error", "error": failure[1] + "; your message is saved, press Retry",
                                  "retry": True})
                else:
                    yield _event(_done(saved))
            finally:
                lock.release()
                await pieces.aclose()

        handed_over = True
        return StreamingResponse(body(), media_type="application/x-ndjson")
    finally:
        if not handed_over:
            lock.release()


def new_seed() -> int:
    """A random sampling seed that fits a signed 32-bit column (and every backend's seed field)."""
    return secrets.randbelow(2**31 - 1)


def _event(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _replay(msg: MessageRow) -> StreamingResponse:
    """Replay an answer that is already stored, in the same event format as a live generation."""

    async def body() -> AsyncIterator[bytes]:
        yield _event({"type": "start"})
        yield _event({"type": "delta", "text": msg.content})
        yield _event(_done(msg))

    return StreamingResponse(body(), media_type="application/x-ndjson")


def _done(msg: MessageRow) -> dict[str, Any]:
    """The closing event of an answer; `incomplete` (cut off before its end marker) makes the page offer Retry."""
    return {"type": "done", "message_id": msg.public_id, "html": render_markdown(msg.content),
            "content": msg.content, "finish_reason": msg.finish_reason, "incomplete": msg.finish_reason == "dropped"}


def finish_reason_of(finals: list[Generation]) -> str:
    """stop, length (the max_tokens limit) or dropped: the stream ended without a finish reason, i.e. without
    its end marker (a connection closed early is not a complete answer, however it reads)."""
    reason = finals[-1].finish_reason if finals else None
    if reason is None:
        return "dropped"
    return "length" if reason in ("length", "max_tokens") else "stop"


@router.post("/api/c/{cid}/messages/{mid}/reaction", response_model=PostedReactionOut)
async def post_reaction(cid: str, mid: str, you: Writer, body: ReactionIn = json_body(ReactionIn)) -> Response:
    def work(c: Connection, p: ParticipantRow, conv: ConversationRow) -> tuple[ReactionOut, bool]:
        msg = flow.owned_message(c, conv, mid)
        t, created = flow.add_reaction(c, p, conv, msg, you.study, content=body.content, label=body.label,
                                       client_key=body.idempotency_key, typing=typing_dict(body.typing))
        return ReactionOut(message_id=msg.public_id, content=t.content, label=t.label), created

    view, created = await you.run_in(cid, work)
    out = PostedReactionOut(reaction=view, created=created)
    return JSONResponse(out.model_dump(), status_code=201 if created else 200)


@router.post("/c/{cid}/finish")
async def finish(cid: str, you: Writer) -> Response:
    def work(c: Connection, p: ParticipantRow, conv: ConversationRow) -> str:
        flow.finish_task(c, p, conv, you.study)
        return f"/c/{conv.public_id}/summary"

    return redirect(await you.run_in(cid, work))


# ------------------------------------------------------------------------------- after each task
@router.get("/c/{cid}/summary")
async def summary_page(request: Request, cid: str, you: Reader) -> Response:
    ctx = you.ctx

    def work(c: Connection, p: ParticipantRow, conv: ConversationRow) -> tuple[str, int, str | None]:
        flow.close_if_expired(c, p, conv)
        ok = p.stage == "post_task" and conv.task_index == p.task_index
        return you.csrf(p), conv.task_index + 1, None if ok else where_now(c, p)

    csrf, number, elsewhere = await you.run_in(cid, work)
    if elsewhere:
        return redirect(elsewhere)
    return ctx.render(request, "summary.html", csrf=csrf, cid=cid, task_number=number, study=you.study)


@router.post("/c/{cid}/summary")
async def summary_post(cid: str, you: Writer) -> Response:
    form = you.form or {}

    def work(c: Connection, p: ParticipantRow, conv: ConversationRow) -> str:
        flow.submit_task_summary(c, p, conv, you.study, form.get("summary"), form.get("expectation"))
        return where_now(c, p)

    return redirect(await you.run_in(cid, work))


@router.get("/survey")
async def survey_page(request: Request, you: Reader) -> Response:
    return await _items_page(request, you, "survey", lambda st: st.survey_questions(), "A few questions about you",
                             "Finish")


@router.post("/survey")
async def survey_post(request: Request, you: Writer) -> Response:
    """Every answer comes back on the page with the missing/invalid ones marked: never a dead end."""
    ctx, form = you.ctx, you.form or {}
    csrf, problems = await you.run(lambda c, p: (you.csrf(p), flow.submit_survey(c, p, you.study, form)))
    if problems:
        items = you.study.survey_questions()
        return ctx.render(request, "items.html", status_code=422, csrf=csrf, items=items, study=you.study,
                          values=flow.submitted_values(items, form), problems=problems, action="/survey",
                          heading="A few questions about you", submit="Finish")
    return redirect("/done")


@router.get("/done")
async def done_page(request: Request, you: Reader) -> Response:
    ctx = you.ctx
    elsewhere = await you.run(lambda c, p: None if p.stage == "done" else where_now(c, p))
    if elsewhere:
        return redirect(elsewhere)
    return ctx.render(request, "done.html", completion_url=you.study.completion_url,
                      code=you.study.completion_code("completed"), study=you.study)


@router.get("/end")
async def end_page(request: Request, you: Reader) -> Response:
    """The other ways out (declined, screened out, timed out), each with its own completion code."""
    ctx = you.ctx

    def work(c: Connection, p: ParticipantRow) -> tuple[str, str | None]:
        return p.stage, None if p.stage in ("declined", "screened_out", "timed_out", "full") else where_now(c, p)

    stage, elsewhere = await you.run(work)
    if elsewhere:
        return redirect(elsewhere)
    text = getattr(you.study.texts, stage)
    return ctx.render(request, "end.html", outcome=stage, text=text, code=you.study.completion_code(stage),
                      completion_url=you.study.completion_url_for(stage), study=you.study)
