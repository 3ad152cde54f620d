"""What `thoughttrace serve` does for production besides starting uvicorn: the schema gate, the proxy it
trusts, the metrics folder its workers share, the request log, and the lines of its banner.

Workers: uvicorn's own `--workers` supervisor (it restarts a worker that dies, and since uvicorn 0.30
needs no gunicorn; uvicorn's gunicorn worker class is deprecated), one event loop per process, each
with its own database pool. See docs/deploy.md.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from .common import UserFacingError

TRUSTED_ENV = "THOUGHTTRACE_TRUSTED_PROXIES"
AUTO_MIGRATE_ENV = "THOUGHTTRACE_AUTO_MIGRATE"
REQUEST_LOG_ENV = "THOUGHTTRACE_REQUEST_LOG"


def schema_gate(db_url: str) -> str:
    """Before the app starts: a database from an older release is upgraded (default) or, with
    THOUGHTTRACE_AUTO_MIGRATE=0, refused with the command to run; one from a NEWER release is always refused
    (this version cannot read it). Returns a line for the banner."""
    from alembic.script import ScriptDirectory

    from thoughttrace.collect.db import make_engine
    from thoughttrace.collect.migrate import alembic_config, current_revision

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    engine = make_engine(db_url)
    try:
        current = current_revision(engine)
    except Exception as exc:  # unreachable server, bad credentials
        raise UserFacingError(f"cannot reach the database ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                              "check --db / THOUGHTTRACE_DB_URL and that the server runs") from None
    finally:
        engine.dispose()
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise UserFacingError(f"the database's schema is at revision {current}, which this thoughttrace does not "
                              f"know (newest here: {head}): it was made by a newer release; install that release, "
                              "or restore a backup made by this one")
    if current == head:
        return f"schema at {head}"
    if os.environ.get(AUTO_MIGRATE_ENV, "1") == "0":
        shown = current or "empty"
        raise UserFacingError(f"the database's schema is at {shown}, this version needs {head}; back it up and "
                              f"upgrade: `thoughttrace db backup BEFORE.dump --db URL && thoughttrace db upgrade --db "
                              f"URL` (or start without THOUGHTTRACE_AUTO_MIGRATE=0 to upgrade at start)")
    return f"schema upgraded {current or 'empty'} -> {head}"


def proxy_kwargs() -> dict[str, Any]:
    """uvicorn's proxy settings: X-Forwarded-For/-Proto are believed only from the listed addresses."""
    trusted = os.environ.get(TRUSTED_ENV, "127.0.0.1").strip()
    if not trusted or trusted == "none":
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def prepare_worker_metrics(workers: int) -> str | None:
    """Several workers: one PROMETHEUS_MULTIPROC_DIR they all write to (emptied now: a restart starts the
    counters at zero, as Prometheus expects of a restarted target). Must happen before the workers start."""
    if workers <= 1:
        return None
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="thoughttrace-metrics-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return str(path)


def request_log_on() -> None:
    """serve logs one JSON line per request to stderr unless THOUGHTTRACE_REQUEST_LOG=off."""
    os.environ.setdefault(REQUEST_LOG_ENV, "json")


def banner_lines(host: str, port: int, workers: int, settings: Any, study: Any, schema_line: str) -> None:
    from thoughttrace.collect.study_version import study_version

    trusted = proxy_kwargs().get("forwarded_allow_ips", "none")
    click.echo(f"  study version: {study_version(study)}  ({schema_line})")
    click.echo(f"  listening on:  http://{host}:{port}  ({workers} worker process{'es' if workers > 1 else ''}, "
               f"{settings.mode} mode, trusted proxy: {trusted}, secure cookies: "
               f"{'on' if settings.secure_cookies else 'OFF'})")
    click.echo("  health:        /healthz (process), /readyz (database, schema, models), /metrics (admin token)")
    if settings.mode == "production" and not settings.secure_cookies:
        click.echo("  warning: cookies are not marked Secure; behind HTTPS set THOUGHTTRACE_SECURE_COOKIES=1",
                   err=True)
