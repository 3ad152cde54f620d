"""One JSON line per request (logger `thoughttrace.request`) and the request metrics, in one ASGI layer.

Each line carries a request id (the proxy's `X-Request-ID` when it is a sane token, else a new one; sent
back in the response's `X-Request-ID`), method, route template, path (no query string: it holds Prolific
ids), status, duration and client address. Bodies are never read here, so a participant's notes and
messages can never reach the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import time
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import metrics

LOGGER = logging.getLogger("thoughttrace.request")
_GOOD_ID = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
#: routes that monitors call every few seconds: counted in the metrics, not logged
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _GOOD_ID.match(candidate):
                return candidate
    return secrets.token_hex(8)


def route_of(scope: Scope) -> str:
    """The matched route's template (`/api/c/{cid}/messages`), never the raw path (bounded label values)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/static" if str(scope.get("path", "")).startswith("/static/") else "unmatched"


class RequestObserver:
    """Times every HTTP request; logs it as JSON and counts it in the metrics when the response ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        if os.environ.get("THOUGHTTRACE_REQUEST_LOG", "off") == "json":  # `serve` sets it (every worker reads it)
            configure_json_log()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = rid
        t0 = time.perf_counter()
        status = 500
        header = (b"x-request-id", rid.encode())

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            seconds = time.perf_counter() - t0
            route = route_of(scope)
            method = str(scope.get("method", ""))
            metrics.observe_request(method, route, status, seconds)
            if route not in QUIET_ROUTES and LOGGER.isEnabledFor(logging.INFO):
                client = scope.get("client")
                LOGGER.info(json.dumps({
                    "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "request_id": rid, "method": method, "route": route, "path": scope.get("path"),
                    "status": status, "ms": round(seconds * 1000, 2), "client": client[0] if client else None}))


def configure_json_log(stream: object = None) -> None:
    """Send the request lines to stderr (journald under systemd), one JSON object per line, nothing else."""
    if any(getattr(h, "_thoughttrace", False) for h in LOGGER.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._thoughttrace = True  # type: ignore[attr-defined]
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
