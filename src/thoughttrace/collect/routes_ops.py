"""Operations endpoints: `/healthz` (the process answers), `/readyz` (it can serve a participant now),
`/metrics` (Prometheus text, behind the admin token).

`/readyz` checks, each with its own status: the database answers `SELECT 1`; its schema is at the
newest migration this version ships; every study model's endpoint answers (`GET /models` on each server
of an OpenAI-compatible pool; in-process models are ready once loaded). 503 when any check fails, so a
proxy or a monitor takes the worker out (or pages someone) before participants see errors.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from . import metrics
from .context import AppContext, ctx_of
from .db import Participant
from .migrate import alembic_config, current_revision
from .routes_admin import require_admin
from .routes_participant import run_db
from .study_version import study_version

router = APIRouter()
MODEL_PROBE_SECONDS = 3.0


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _check_database(ctx: AppContext) -> dict[str, Any]:
    t0 = time.perf_counter()
    with ctx.db.engine.connect() as c:
        c.execute(text("SELECT 1"))
    return {"status": "ok", "ms": round((time.perf_counter() - t0) * 1000, 1)}


def _check_migrations(ctx: AppContext) -> dict[str, Any]:
    current, head = current_revision(ctx.db.engine), head_revision()
    if current == head:
        return {"status": "ok", "revision": current}
    return {"status": "error", "revision": current, "head": head,
            "detail": "the schema is not at this version's newest migration: restart `thoughttrace serve` (it "
                      "upgrades at start) or run it once with --check"}


def model_urls(model: Any) -> list[str]:
    """The server URLs behind a model (empty for in-process models: scripted, local, transformers)."""
    backend = getattr(model, "backend", None)
    pool = getattr(backend, "pool", None)
    if pool is not None and getattr(pool, "endpoints", None):
        return [str(ep.url) for ep in pool.endpoints]
    base = getattr(backend, "base_url", None)
    return [str(base)] if isinstance(base, str) and base.startswith("http") else []


async def _check_model(model: Any) -> dict[str, Any]:
    urls = model_urls(model)
    if not urls:
        return {"status": "ok", "detail": "in-process"}
    servers: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=MODEL_PROBE_SECONDS) as client:
        for url in urls:
            try:
                r = await client.get(url.rstrip("/") + "/models")
                servers[url] = "ok" if r.status_code < 500 else f"error: HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                servers[url] = f"error: {type(exc).__name__}"
    up = sum(1 for v in servers.values() if v == "ok")
    return {"status": "ok" if up else "error", "servers": servers}


async def _guarded(name: str, work: Any) -> dict[str, Any]:
    try:
        return dict(await work)
    except Exception as exc:  # a check that raises is a failed check, never a 500
        return {"status": "error", "detail": f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> Response:
    ctx = ctx_of(request)
    loop = asyncio.get_running_loop()
    database = await _guarded("database", loop.run_in_executor(None, _check_database, ctx))
    migrations = (await _guarded("migrations", loop.run_in_executor(None, _check_migrations, ctx))
                  if database["status"] == "ok" else {"status": "error", "detail": "database unreachable"})
    keys = list(ctx.models)
    probes = await asyncio.gather(*(_guarded(k, _check_model(ctx.models[k])) for k in keys))
    checks: dict[str, Any] = {"database": database, "migrations": migrations, "models": dict(zip(keys, probes))}
    ok = database["status"] == "ok" and migrations["status"] == "ok" and all(p["status"] == "ok" for p in probes)
    body = {"status": "ok" if ok else "error", "study_version": study_version(ctx.study), "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


def _by_stage(s: Session) -> dict[str, int]:
    return {str(stage): int(n) for stage, n in s.execute(select(Participant.stage, func.count()).group_by(
        Participant.stage))}


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    ctx = require_admin(request)
    counts = await run_db(ctx, _by_stage)
    return Response(metrics.render(counts), media_type=metrics.CONTENT_TYPE)
