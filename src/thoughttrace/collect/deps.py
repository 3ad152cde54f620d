"""FastAPI dependencies of the participant routes, so a route is short and cannot forget a check.

- `Reader`: the participant from the signed cookie (403 without one), for pages and reads;
- `Writer`: the same plus the CSRF token (form field or X-CSRF-Token header), checked before the
  route's own work runs; every state-changing route takes a Writer (a test enforces it);
- `json_body(Model)`: the JSON body as a typed schema (400 for bad JSON, too deep nesting or a
  non-object; 422 naming the field for a wrong type).

Database work still runs inside one transaction through `run_db` (committed before the response goes
out): `await you.run(work)` calls `work(session, participant)` with the checks already passed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from .context import AppContext, ctx_of
from .db import Participant
from .flow import FlowError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


async def run_db(ctx: AppContext, work: Callable[[Session], T]) -> T:
    """Run `work(session)` and commit before returning (the response goes out after the commit).

    PostgreSQL: in the thread pool, transactions run side by side. SQLite: on the event loop itself.
    SQLite has one writer at a time anyway, and threads queuing on its lock sleep in SQLite's busy
    handler (backing off up to 100 ms) instead of waking when the lock frees; one short transaction
    after another on the loop is both faster and fairer. Several processes on one SQLite file still
    work (the busy timeout covers them); for many workers use PostgreSQL.
    """

    def job() -> T:
        with ctx.db.session() as s:
            return work(s)

    if ctx.db.is_sqlite:
        return job()
    return await run_in_threadpool(job)


class You:
    """One participant request: the app context, the form (if any) and whether CSRF must be checked."""

    def __init__(self, request: Request, form: Any = None, *, check_csrf: bool) -> None:
        self.request = request
        self.ctx = ctx_of(request)
        self.form = form
        self.check_csrf = check_csrf

    def participant(self, s: Session) -> Participant:
        p = self.ctx.participant(self.request, s)
        if self.check_csrf:
            self.ctx.check_csrf(self.request, p, self.form)
        return p

    def csrf(self, p: Participant) -> str:
        return self.ctx.signer.csrf_token(p.public_id)

    def run(self, work: Callable[[Session, Participant], T]) -> Awaitable[T]:
        return run_db(self.ctx, lambda s: work(s, self.participant(s)))


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
    return data


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
