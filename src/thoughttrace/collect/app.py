"""`create_app`: the FastAPI app of the study platform (server-rendered pages, a little JS for the chat).

Models come from the study config through `thoughttrace.llm.get_model` (no response cache: every
participant gets a fresh answer), or are injected (`models={key: Model}`) by tests and benchmarks.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thoughttrace.llm import Model, get_model

from . import routes_admin, routes_ops, routes_participant
from .context import AppContext, ctx_of
from .db import Database
from .flow import FlowError
from .metrics import metered
from .migrate import upgrade
from .request_log import RequestObserver
from .security import Signer
from .settings import Settings
from .study import StudyConfig
from .versions import open_versions

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self' https://app.prolific.com")


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413 (by Content-Length, and while streaming in)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send, self.limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise FlowError(413, f"request body too large (at most {self.limit} bytes)")
            return msg

        await self.app(scope, limited, send)


class SecurityHeaders:
    """CSP and friends on every response (plain ASGI: cheaper than BaseHTTPMiddleware on each request)."""

    HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"same-origin"), (b"cache-control", b"no-store"), (b"x-frame-options", b"DENY")]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                   *(h for h in self.HEADERS if h[0] not in present)]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"error": "request body too large (at most {limit} bytes)"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


#: FastAPI's built-in OpenTelemetry hooks, off: unconfigured they still asked the global tracer, meter and
#: logger providers (and the environment) on every request, ~5% of a request's CPU; the platform exports
#: no telemetry. Only FastAPI versions that have the hooks take the argument.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def build_models(study: StudyConfig) -> dict[str, Model]:
    """One Model per pool entry; `options` go to the backend (e.g. `outputs` for scripted)."""
    models = {}
    for m in study.models:
        options = dict(m.options)
        if m.spec.split(":")[0] == "scripted" and not options:
            options["default"] = "This is a scripted answer: the platform runs without a real model."
        models[m.key] = get_model(m.spec, cache=False, **options)
    return models


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.startswith("/admin/api/") or "application/json" in request.headers.get(
        "accept", "")


def create_app(settings: Settings, study: StudyConfig, *, models: Mapping[str, Model] | None = None,
               run_migrations: bool = True) -> FastAPI:
    """Build the app. Migrations run here (not lazily) so a broken database fails at start-up."""
    settings = settings.checked()
    db = Database(settings.db_url)
    if run_migrations:
        upgrade(db.engine)
    pool = metered(dict(models) if models is not None else build_models(study))
    missing = [m.key for m in study.models if m.key not in pool]
    if missing:
        raise ValueError(f"no Model given for the study's model key(s) {missing}")
    ctx = AppContext(settings=settings, study=study, db=db, signer=Signer(settings.secret_key, settings.admin_token),
                     models=pool, versions=open_versions(db, study) if run_migrations else None)

    app = FastAPI(title=f"ThoughtTrace study: {study.name}", docs_url=None, redoc_url=None, openapi_url=None,
                  **_NO_TELEMETRY)
    app.state.ctx = ctx
    app.mount("/static", StaticFiles(packages=[("thoughttrace.collect", "static")]), name="static")
    # the routes go onto the app's own router, not as included sub-routers: this FastAPI matches an included
    # router's routes twice per request (once to pick the router, once inside it), a tenth of a request's CPU
    app.router.routes.extend([*routes_participant.router.routes, *routes_admin.router.routes,
                              *routes_ops.router.routes])

    @app.exception_handler(FlowError)
    async def _flow_error(request: Request, exc: FlowError) -> Response:
        if wants_json(request):
            body: dict[str, Any] = {"error": exc.message}
            if exc.redirect:
                body["redirect"] = exc.redirect
            return JSONResponse(body, status_code=exc.status)
        return ctx_of(request).render(request, "message.html", status_code=exc.status, title="Sorry",
                                      message=exc.message, link=exc.redirect or "/next")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_json(request) or exc.status_code == 405:
            return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
        return ctx_of(request).render(request, "message.html", status_code=exc.status_code, title="Not found",
                                      message=str(exc.detail), link="/next")

    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)  # type: ignore[arg-type]
    app.add_middleware(RequestObserver)  # type: ignore[arg-type]
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (`--factory`): settings and the study path from THOUGHTTRACE_* variables."""
    import os

    from .study import demo_study, load_study, with_single_model

    settings = Settings.from_env()
    study = load_study(settings.study_path) if settings.study_path else demo_study()
    if os.environ.get("THOUGHTTRACE_MODEL"):
        study = with_single_model(study, os.environ["THOUGHTTRACE_MODEL"])
    return create_app(settings, study)
