"""Participant pages and the chat API. Every route finds the participant from the signed cookie and
touches only that participant's rows; ids in paths are checked for ownership (404 when not theirs).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from thoughttrace.llm import LLMError

from . import flow
from .context import ctx_of
from .db import Message, Participant
from .deps import Reader, SessionDep, Writer, You, json_body, read_json, run_db
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
__all__ = ["read_json", "redirect", "router", "run_db", "where_now"]


def where_now(s: Session, p: Participant) -> str:
    """The page a participant belongs on: how reloading or coming back resumes the study."""
    if p.stage in ("chat", "post_task"):
        conv = flow.current_conversation(s, p)
        if conv is not None:
            if p.stage == "chat" and flow.close_if_expired(s, p, conv):
                return f"/c/{conv.public_id}/summary"
            return f"/c/{conv.public_id}" if p.stage == "chat" else f"/c/{conv.public_id}/summary"
    return {"consent": "/consent", "screening": "/screening", "tutorial": "/tutorial", "task": "/task",
            "survey": "/survey", "done": "/done", "declined": "/end", "screened_out": "/end",
            "timed_out": "/end"}.get(p.stage, "/consent")


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
async def start(request: Request, s: SessionDep) -> Response:
    """The entry link: `/start?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...`, or bare for an anonymous id."""
    ctx = ctx_of(request)
    q = request.query_params
    pid, study_id, session_id = q.get("PROLIFIC_PID"), q.get("STUDY_ID"), q.get("SESSION_ID")
    current = ctx.signer.read_participant_cookie(request.cookies.get(PARTICIPANT_COOKIE))
    p = flow.participant_by_public_id(s, current) if current and not pid else None
    if p is not None and p.stage == "withdrawn":
        p = None
    if p is None:
        p = flow.find_or_create_participant(s, pid, study_id, session_id, anonymous_entry=ctx.study.anonymous_entry)
    if p.stage == "withdrawn":
        raise flow.FlowError(403, "your data was withdrawn from this study; thank you for your time")
    flow.check_time_limit(s, p, ctx.study)
    resp = redirect(where_now(s, p))
    resp.set_cookie(PARTICIPANT_COOKIE, ctx.signer.participant_cookie(p.public_id), httponly=True, samesite="lax",
                    secure=ctx.settings.secure_cookies, max_age=60 * 60 * 24 * 14)
    return resp


@router.get("/next")
async def next_page(you: Reader) -> Response:
    return redirect(where_now(you.s, you.p))


# ------------------------------------------------------------------------------ consent and tutorial
def elsewhere(you: You, stage: str) -> str | None:
    """Where the participant belongs when a page of `stage` is opened at another stage (None: here)."""
    return None if you.p.stage == stage else where_now(you.s, you.p)


@router.get("/consent")
async def consent_page(request: Request, you: Reader) -> Response:
    other = elsewhere(you, "consent")
    return redirect(other) if other else you.ctx.render(request, "consent.html", csrf=you.csrf)


@router.post("/consent")
async def consent_post(you: Writer) -> Response:
    s, p, form, study = you.s, you.p, you.form, you.ctx.study
    if form.get("decision") == "decline" and study.allow_decline:
        flow.decline_consent(s, p)
    elif form.get("agree") != "yes":
        raise flow.FlowError(422, "please tick the box to agree before you start", redirect="/consent")
    else:
        flow.give_consent(s, p, study)
    return redirect(where_now(s, p))


def _items_form(request: Request, you: You, stage: str, items: Any, heading: str, submit: str,
                problems: dict[str, str] | None = None) -> Response:
    """An item form (screening or survey), empty or with what was sent and each problem marked."""
    values = flow.submitted_values(items, you.form) if problems else {}
    return you.ctx.render(request, "items.html", status_code=422 if problems else 200, csrf=you.csrf, items=items,
                          values=values, problems=problems or {}, action=f"/{stage}", heading=heading, submit=submit)


@router.get("/screening")
async def screening_page(request: Request, you: Reader) -> Response:
    study = you.ctx.study
    other = elsewhere(you, "screening")
    return redirect(other) if other else _items_form(request, you, "screening", study.screening,
                                                     study.texts.screening_title, "Continue")


@router.post("/screening")
async def screening_post(request: Request, you: Writer) -> Response:
    study = you.ctx.study
    problems = flow.submit_screening(you.s, you.p, study, you.form)
    if problems:
        return _items_form(request, you, "screening", study.screening, study.texts.screening_title, "Continue",
                           problems)
    return redirect(where_now(you.s, you.p))


@router.get("/tutorial")
async def tutorial_page(request: Request, you: Reader) -> Response:
    other = elsewhere(you, "tutorial")
    return redirect(other) if other else you.ctx.render(request, "tutorial.html", csrf=you.csrf, wrong=[], given={})


@router.post("/tutorial")
async def quiz_post(request: Request, you: Writer) -> Response:
    study = you.ctx.study
    answers = {i: you.form.get(f"q{i}") for i in range(len(study.quiz))}
    wrong = flow.submit_quiz(you.s, you.p, study, answers)
    if wrong:
        return you.ctx.render(request, "tutorial.html", status_code=422, csrf=you.csrf, wrong=wrong, given=answers)
    return redirect(where_now(you.s, you.p))


# ------------------------------------------------------------------------------------------- tasks
@router.get("/task")
async def task_page(request: Request, you: Reader) -> Response:
    ctx, p = you.ctx, you.p
    other = elsewhere(you, "task")
    if other:
        return redirect(other)
    flow.assign_design_row(you.s, p, ctx.study)  # a participant who passed the quiz before rows were set there
    spec = flow.task_spec_of(ctx.study, p)
    return ctx.render(request, "task.html", csrf=you.csrf, task_number=p.task_index + 1,
                      instructions=spec.instructions or ctx.study.texts.task_prompt, fixed=spec.statement)


@router.post("/task")
async def task_post(you: Writer) -> Response:
    return redirect(f"/c/{flow.start_task(you.s, you.p, you.ctx.study, you.form.get('task')).public_id}")


# -------------------------------------------------------------------------------------------- chat
def message_view(m: Message, thought: Any) -> dict[str, Any]:
    view: dict[str, Any] = {"id": m.public_id, "role": m.role, "content": m.content,
                            "timestamp": m.created_at.isoformat()}
    if m.role == "assistant":
        view["html"] = render_markdown(m.content)
    view["note"] = None if thought is None else {"content": thought.content, "label": thought.label}
    return view


def chat_state(s: Session, p: Participant, conv: Any) -> dict[str, Any]:
    msgs = flow.messages_of(s, conv)
    notes = flow.thoughts_of(s, msgs)
    return {
        "conversation": conv.public_id, "task": conv.task_statement, "task_number": conv.task_index + 1,
        "deadline": conv.deadline_at.isoformat(), "open": p.stage == "chat" and conv.ended_at is None,
        "messages": [message_view(m, notes.get(m.id)) for m in msgs],
        "awaiting_answer": flow.pending_user_message(msgs) is not None,
    }


@router.get("/c/{cid}")
async def chat_page(request: Request, cid: str, you: Reader) -> Response:
    s, p, ctx = you.s, you.p, you.ctx
    conv = flow.owned_conversation(s, p, cid)
    if flow.close_if_expired(s, p, conv) or p.stage != "chat" or conv.task_index != p.task_index:
        return redirect(where_now(s, p))
    return ctx.render(request, "chat.html", csrf=you.csrf, state=chat_state(s, p, conv),
                      reason_labels=ctx.study.reason_labels(), reaction_labels=ctx.study.reaction_labels())


@router.get("/api/c/{cid}/state", response_model=ChatStateOut)
async def chat_state_api(cid: str, you: Reader) -> Response:
    return JSONResponse(chat_state(you.s, you.p, flow.owned_conversation(you.s, you.p, cid)))


@router.post("/api/c/{cid}/messages", response_model=PostedMessageOut)
async def post_message(cid: str, you: Writer, body: MessageIn = json_body(MessageIn)) -> Response:
    """Store a user message with its reason (committed before the answer). Replays return the same id."""
    s, p = you.s, you.p
    conv = flow.owned_conversation(s, p, cid)
    posted = flow.add_user_message(
        s, p, conv, you.ctx.study, content=body.content, reason=body.reason, reason_label=body.reason_label,
        client_key=body.idempotency_key, typing=typing_dict(body.reason_typing))
    out = PostedMessageOut(message=MessageOut.model_validate(message_view(posted.message, posted.note)),
                           created=posted.created)
    return JSONResponse(out.model_dump(), status_code=201 if posted.created else 200)


@router.post("/api/c/{cid}/generate")
async def generate(cid: str, you: Writer, _body: EmptyIn = json_body(EmptyIn)) -> Response:
    """Answer the pending user message, streaming the model's text to the browser as it is generated.

    A failure before the first piece answers 502/504 with `retry: true`; a failure mid-stream ends the stream
    with an `error` event. Either way the user message stays stored and nothing half-written is saved, so the
    participant can press Retry. The answer is committed before the closing `done` event. The request's own
    transaction ends before the model is called (the wait must not hold it); the answer is saved in another.
    """
    ctx, s, p = you.ctx, you.s, you.p
    conv = flow.owned_conversation(s, p, cid)
    msgs = flow.messages_of(s, conv)
    pending = flow.pending_user_message(msgs)
    if pending is None:
        if not msgs or msgs[-1].role != "assistant":
            raise flow.FlowError(409, "there is no message to answer yet")
        return _replay(msgs[-1])  # already answered: a replay or a second tab
    flow.require_open_chat(p, conv)
    conv_id, model_key = conv.id, conv.model_key
    request_msgs = flow.build_model_request(ctx.study.model_entry(model_key).system_prompt, msgs)
    s.commit()  # nothing is held while waiting for the lock or the model
    lock = ctx.generation_lock(conv_id)
    waited = lock.locked()
    await lock.acquire()
    handed_over = False
    try:
        def recheck(s: Session) -> Message | None:
            assert pending is not None
            return flow.answer_to(s, conv_id, pending)

        # only a request that waited behind another one here can find its answer written meanwhile; a
        # concurrent answer from another worker is caught when saving (add_assistant_message, unique seq)
        answered = await run_db(ctx, recheck) if waited else None
        if answered is not None:
            return _replay(answered)
        entry = ctx.study.model_entry(model_key)
        timeout = ctx.study.model_timeout_seconds
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        deadline = started_at + timeout
        seed = new_seed()  # a fresh sample per request; stored with the answer so it can be audited/replayed
        pieces = ctx.models[model_key].astream(request_msgs, max_tokens=entry.max_tokens, temperature=entry.temperature,
                                               seed=seed)

        async def next_piece() -> str | None:
            # a timeout scope, not wait_for: wait_for wraps every piece in a task of its own
            async with asyncio.timeout_at(deadline):
                return await anext(pieces, None)

        def failure_of(exc: Exception) -> tuple[int, str]:
            if isinstance(exc, TimeoutError):
                return 504, f"the assistant took longer than {timeout:g} s"
            return 502, f"the assistant could not answer ({type(exc).__name__})"

        def save(failure: tuple[int, str] | None, text: str) -> Callable[[Session], Message | None]:
            """The database work that ends a generation: the answer, or the failure logged."""
            from .db import Conversation as ConvRow

            def work(s: Session) -> Message | None:
                assert pending is not None
                if failure is not None:
                    conv = s.get(ConvRow, conv_id)
                    assert conv is not None
                    flow.log_event_for(s, conv.participant_id, "model_error", failure[1], conv)
                    return None
                latency = int((loop.time() - started_at) * 1000)
                return flow.add_assistant_message(s, conv_id, pending, text, seed=seed, latency_ms=latency)

            return work

        try:
            first = await next_piece()
        except (TimeoutError, LLMError) as exc:
            failure = failure_of(exc)
            await pieces.aclose()
            await run_db(ctx, save(failure, ""))
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
                    saved = await run_db(ctx, save(failure, text))
                except IntegrityError:  # another worker stored its answer first: that one is the answer
                    saved = await run_db(ctx, recheck)
                if saved is None:
                    assert failure is not None
                    yield _event({"type": "error", "error": failure[1] + "; your message is saved, press Retry",
                                  "retry": True})
                else:
                    yield _event({"type": "done", "message_id": saved.public_id,
                                  "html": render_markdown(saved.content), "content": saved.content})
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


def _replay(msg: Message) -> StreamingResponse:
    """Replay an answer that is already stored, in the same event format as a live generation."""

    async def body() -> AsyncIterator[bytes]:
        yield _event({"type": "start"})
        yield _event({"type": "delta", "text": msg.content})
        yield _event({"type": "done", "message_id": msg.public_id, "html": render_markdown(msg.content),
                      "content": msg.content})

    return StreamingResponse(body(), media_type="application/x-ndjson")


@router.post("/api/c/{cid}/messages/{mid}/reaction", response_model=PostedReactionOut)
async def post_reaction(cid: str, mid: str, you: Writer, body: ReactionIn = json_body(ReactionIn)) -> Response:
    s, p = you.s, you.p
    conv = flow.owned_conversation(s, p, cid)
    msg = flow.owned_message(s, conv, mid)
    t, created = flow.add_reaction(s, p, conv, msg, you.ctx.study, content=body.content, label=body.label,
                                   client_key=body.idempotency_key, typing=typing_dict(body.typing))
    out = PostedReactionOut(reaction=ReactionOut(message_id=msg.public_id, content=t.content, label=t.label),
                            created=created)
    return JSONResponse(out.model_dump(), status_code=201 if created else 200)


@router.post("/c/{cid}/finish")
async def finish(cid: str, you: Writer) -> Response:
    conv = flow.owned_conversation(you.s, you.p, cid)
    flow.finish_task(you.s, you.p, conv, you.ctx.study)
    return redirect(f"/c/{conv.public_id}/summary")


# ------------------------------------------------------------------------------- after each task
@router.get("/c/{cid}/summary")
async def summary_page(request: Request, cid: str, you: Reader) -> Response:
    s, p = you.s, you.p
    conv = flow.owned_conversation(s, p, cid)
    flow.close_if_expired(s, p, conv)
    if p.stage != "post_task" or conv.task_index != p.task_index:
        return redirect(where_now(s, p))
    return you.ctx.render(request, "summary.html", csrf=you.csrf, cid=cid, task_number=conv.task_index + 1)


@router.post("/c/{cid}/summary")
async def summary_post(cid: str, you: Writer) -> Response:
    conv = flow.owned_conversation(you.s, you.p, cid)
    flow.submit_task_summary(you.s, you.p, conv, you.ctx.study, you.form.get("summary"),
                             you.form.get("expectation"))
    return redirect(where_now(you.s, you.p))


SURVEY_HEADING = "A few questions about you"


@router.get("/survey")
async def survey_page(request: Request, you: Reader) -> Response:
    other = elsewhere(you, "survey")
    return redirect(other) if other else _items_form(request, you, "survey", you.ctx.study.survey_questions(),
                                                     SURVEY_HEADING, "Finish")


@router.post("/survey")
async def survey_post(request: Request, you: Writer) -> Response:
    """Every answer comes back on the page with the missing/invalid ones marked: never a dead end."""
    study = you.ctx.study
    problems = flow.submit_survey(you.s, you.p, study, you.form)
    if problems:
        return _items_form(request, you, "survey", study.survey_questions(), SURVEY_HEADING, "Finish", problems)
    return redirect("/done")


@router.get("/done")
async def done_page(request: Request, you: Reader) -> Response:
    ctx = you.ctx
    other = elsewhere(you, "done")
    if other:
        return redirect(other)
    return ctx.render(request, "done.html", completion_url=ctx.study.completion_url,
                      code=ctx.study.completion_code("completed"))


@router.get("/end")
async def end_page(request: Request, you: Reader) -> Response:
    """The other ways out (declined, screened out, timed out), each with its own completion code."""
    ctx, stage = you.ctx, you.p.stage
    if stage not in ("declined", "screened_out", "timed_out"):
        return redirect(where_now(you.s, you.p))
    return ctx.render(request, "end.html", outcome=stage, text=getattr(ctx.study.texts, stage),
                      code=ctx.study.completion_code(stage), completion_url=ctx.study.completion_url_for(stage))
