"""FastAPI dependencies of the participant routes, so a route is short and cannot forget a check.

- `Reader`: the participant from the signed cookie (403 without one), for pages and reads;
- `Writer`: the same plus the CSRF token (form field or X-CSRF-Token header), checked before the
  route's own work runs; every state-changing route takes a Writer (a test enforces it);
- `json_body(Model)`: the JSON body as a typed schema (400 for bad JSON, too deep nesting or a
  non-object; 422 naming the field for a wrong type).

Database work runs inside one transaction (committed before the response goes out): `await
you.run(work)` calls `work(connection, participant)` with the checks already passed, `you.run_in(cid,
work)` `work(connection, participant, conversation)` with the conversation's ownership checked too; the participant
side speaks SQLAlchemy Core through `queries` (`run_tx`), the researcher's pages the ORM (`run_db`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from .context import AppContext, ctx_of
from .flow import FlowError
from .queries import ConversationRow, ParticipantRow

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


async def _run(ctx: AppContext, job: Callable[[], T]) -> T:
    """Run one transaction's `job`: on PostgreSQL in the database's own threads (transactions side by
    side), on SQLite on the event loop itself.

    PostgreSQL: a plain executor with one thread per pooled connection, not Starlette's
    `run_in_threadpool` (anyio: a capacity limiter and cancel scope around every call); measured here,
    a sixth less server CPU per request and a tenth more requests per second with two workers.

    SQLite has one writer at a time anyway, and threads queuing on its lock sleep in SQLite's busy
    handler (backing off up to 100 ms) instead of waking when the lock frees; one short transaction
    after another on the loop is both faster and fairer. Several processes on one SQLite file still
    work (the busy timeout covers them); for many workers use PostgreSQL.
    """
    if ctx.db.executor is None:
        return job()
    return await asyncio.get_running_loop().run_in_executor(ctx.db.executor, job)


async def run_db(ctx: AppContext, work: Callable[[Session], T]) -> T:
    """Run `work(session)` (ORM) and commit before returning (the response goes out after the commit)."""

    def job() -> T:
        with ctx.db.session() as s:
            return work(s)

    return await _run(ctx, job)


async def run_tx(ctx: AppContext, work: Callable[[Connection], T]) -> T:
    """Run `work(connection)` (Core, see `queries`) in one transaction, committed before returning."""

    def job() -> T:
        with ctx.db.transaction() as c:
            return work(c)

    return await _run(ctx, job)


class You:
    """One participant request: the app context, the form (if any) and whether CSRF must be checked."""

    def __init__(self, request: Request, form: Any = None, *, check_csrf: bool) -> None:
        self.request = request
        self.ctx = ctx_of(request)
        self.form = form
        self.check_csrf = check_csrf
        #: the participant's own study configuration version, once the participant is read (see `versions`)
        self.study = self.ctx.study

    def participant(self, c: Connection) -> ParticipantRow:
        p = self.ctx.participant(self.request, c)
        self.study = self.ctx.study_of(p, c)
        if self.check_csrf:
            self.ctx.check_csrf(self.request, p, self.form)
        return p

    def csrf(self, p: ParticipantRow) -> str:
        return self.ctx.signer.csrf_token(p.public_id)

    def run(self, work: Callable[[Connection, ParticipantRow], T]) -> Awaitable[T]:
        """`work(connection, participant)` in one transaction, after the participant (and CSRF) checks."""
        return run_tx(self.ctx, lambda c: work(c, self.participant(c)))

    def run_in(self, cid: str, work: Callable[[Connection, ParticipantRow, ConversationRow], T]) -> Awaitable[T]:
        """`work(connection, participant, conversation)` for the participant's own conversation `cid` (404
        when it is someone else's or unknown), after the same checks as `run`."""

        def job(c: Connection) -> T:
            p, conv = self.ctx.participant_in(self.request, c, cid)
            self.study = self.ctx.study_of(p, c)
            if self.check_csrf:
                self.ctx.check_csrf(self.request, p, self.form)
            if conv is None:  # the same answer for unknown and for someone else's
                raise FlowError(404, "no such conversation in your session")
            return work(c, p, conv)

        return run_tx(self.ctx, job)


async def _reader(request: Request) -> You:
    return You(request, check_csrf=False)


async def _writer(request: Request) -> You:
    form = None
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/")):
        form = await request.form()
    return You(request, form, check_csrf=True)


Reader = Annotated[You, Depends(_reader)]
Writer = Annotated[You, Depends(_writer)]
WRITER_DEPENDENCY = _writer
READER_DEPENDENCY = _reader


async def read_json(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise FlowError(400, "the request body is not valid JSON") from None
    except RecursionError:  # deeply nested arrays/objects: refuse, do not crash
        raise FlowError(400, "the request body is nested too deeply; send a flat JSON object") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FlowError(400, "the request body must be a JSON object")
    try:
        bad = not_utf8_field(data)
    except RecursionError:
        raise FlowError(400, "the request body is nested too deeply; send a flat JSON object") from None
    if bad is not None:
        raise FlowError(400, f"{bad}: the text is not valid Unicode (a lone surrogate such as \\ud800); "
                             "send the text as typed, without broken escape sequences")
    return data


def not_utf8_field(value: Any, where: str = "") -> str | None:
    """The path of the first text (key or value) that cannot be encoded as UTF-8, or None.

    JSON's `\\ud800` escapes decode to lone surrogates, which neither SQLite nor PostgreSQL can store (a 500 at
    commit, after the checks); found here, before any database work, they are a 400 naming the field.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "body"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            name = f"{where}.{k}" if where else str(k)
            bad = not_utf8_field(k, name) or not_utf8_field(v, name)
            if bad is not None:
                return bad
    elif isinstance(value, list):
        for i, v in enumerate(value):
            bad = not_utf8_field(v, f"{where}.{i}" if where else str(i))
            if bad is not None:
                return bad
    return None


def json_body(model: type[M]) -> Any:
    """A dependency that parses the body into `model` (see the module docstring for the answers)."""

    async def parse(request: Request) -> M:
        data = await read_json(request)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "body"
            raise FlowError(422, f"{where}: {err['msg']}") from None

    return Depends(parse)
