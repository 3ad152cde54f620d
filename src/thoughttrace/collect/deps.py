"""FastAPI dependencies of the participant routes, so a route is short and cannot forget a check.

- `SessionDep`: the request's database session, one transaction committed when the route returns and
  BEFORE the response is sent (scope "function"), rolled back when the route raises;
- `Reader`: the participant from the signed cookie (403 without one), for pages and reads;
- `Writer`: the same plus the CSRF token (form field or X-CSRF-Token header), checked before the
  route's own work runs; every state-changing route takes a Writer (a test enforces it);
- `json_body(Model)`: the JSON body as a typed schema (400 for bad JSON, too deep nesting or a
  non-object; 422 naming the field for a wrong type).

The session's work runs on the event loop, between the route's start and its return, with no await in
between: the whole request body is read before the session opens (`_read_body`), and every dependency
here is async (a sync one would hop to a thread mid-transaction). On SQLite that is required, since a
write transaction (BEGIN IMMEDIATE) held across an await would stall every other request on the busy
timeout; on PostgreSQL it saves a thread hop per request (transactions here are a few short statements).
Work that must await in the middle (the model call of `/generate`) ends the transaction first and uses
`run_db` for what comes after. Researcher routes use `run_db` (their exports may take long: thread pool).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
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
    """Run `work(session)` in its own transaction, committed before returning.

    PostgreSQL: in the thread pool, transactions run side by side. SQLite: on the event loop itself.
    SQLite has one writer at a time anyway, and threads queuing on its lock sleep in SQLite's busy
    handler (backing off up to 100 ms) instead of waking when the lock frees; one short transaction
    after another on the loop is both faster and fairer.
    """

    def job() -> T:
        with ctx.db.session() as s:
            return work(s)

    if ctx.db.is_sqlite:
        return job()
    return await run_in_threadpool(job)


async def _read_body(request: Request) -> None:
    """Read the whole body now (Starlette caches it), so no await is left once the transaction runs."""
    await request.body()


async def _session(request: Request, _body: Annotated[None, Depends(_read_body)]) -> AsyncIterator[Session]:
    s = ctx_of(request).db.sessions()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


SessionDep = Annotated[Session, Depends(_session, scope="function")]


class You:
    """One participant request: the app context, the session, the participant, the form (if any)."""

    def __init__(self, request: Request, s: Session, p: Participant, form: Any = None) -> None:
        self.request = request
        self.ctx = ctx_of(request)
        self.s = s
        self.p = p
        self.form = form if form is not None else {}

    @property
    def csrf(self) -> str:
        """The CSRF token to put into the page this request renders."""
        return self.ctx.signer.csrf_token(self.p.public_id)


async def _reader(request: Request, s: SessionDep) -> You:
    return You(request, s, ctx_of(request).participant(request, s))


async def _writer(request: Request, s: SessionDep) -> You:
    ctx = ctx_of(request)
    form = None
    if request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/")):
        form = await request.form()  # parsed from the body already read: no wait on the network here
    p = ctx.participant(request, s)
    ctx.check_csrf(request, p, form)
    return You(request, s, p, form)


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
