"""`thoughttrace serve` (the study platform) and `thoughttrace demo` (the same on embedded defaults)."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import click

from . import serve_ops
from .common import UserFacingError

DEMO_DB = "thoughttrace-demo.sqlite"
#: longer than the idle timeout of the usual proxies and clients (60 s): a server that closes an idle
#: connection first races a client reusing it, which then sees a reset instead of an answer
KEEP_ALIVE_SECONDS = 65


def _study(study_path: str | None, model_spec: str | None) -> Any:
    from thoughttrace.collect.study import StudyConfigError, demo_study, load_study, with_single_model

    try:
        study = load_study(study_path) if study_path else demo_study()
    except StudyConfigError as exc:
        raise UserFacingError(str(exc)) from None
    return with_single_model(study, model_spec) if model_spec else study


def _settings(mode: str, db_url: str | None, **extra: Any) -> Any:
    from thoughttrace.collect.settings import Settings, SettingsError

    try:
        return Settings.from_env(mode=mode, db_url=db_url, **extra)
    except SettingsError as exc:
        raise UserFacingError(str(exc)) from None


def _check_models(study: Any) -> None:
    """Load every model of the pool and make one tiny call, so a missing model fails now, not mid-study.
    The models are closed afterwards: the app builds its own inside the server's event loop."""
    from thoughttrace.collect.app import build_models

    try:
        models = build_models(study)
    except Exception as exc:  # missing package, bad spec, missing weights
        raise UserFacingError(_model_hint(exc)) from None

    async def ping() -> None:
        for m in models.values():
            await m.agenerate("Say hello.", max_tokens=4, temperature=0.0)
            await m.aclose()

    failure: list[BaseException] = []

    def in_own_loop() -> None:  # a thread of its own: works even when the caller already runs a loop
        try:
            asyncio.run(ping())
        except Exception as exc:
            failure.append(exc)

    worker = threading.Thread(target=in_own_loop, name="thoughttrace-model-check")
    worker.start()
    worker.join()
    if failure:
        raise UserFacingError(_model_hint(failure[0])) from None


def _model_hint(exc: BaseException) -> str:
    return (f"the study's model could not be loaded or called ({type(exc).__name__}: {exc}). For the embedded "
            "model install its weights (`make install`; `thoughttrace doctor` names what is missing), pick another with "
            "--model (e.g. 'local:smollm2', 'openai-compatible/NAME' with THOUGHTTRACE_BASE_URL), or try the "
            "platform without a model: --model scripted")


def _banner(host: str, port: int, settings: Any, study: Any, show_token: bool) -> None:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    from sqlalchemy.engine import make_url

    shown_db = make_url(settings.db_url).render_as_string(hide_password=True)
    click.echo(f"ThoughtTrace study '{study.name}' on {shown_db}")
    click.echo(f"  models:       {', '.join(f'{m.key} ({m.spec})' for m in study.models)}")
    click.echo(f"  participants: {base}/start   (Prolific: {base}/start?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}"
               "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}})")
    click.echo(f"  admin:        {base}/admin/login")
    if show_token:
        click.echo(f"  admin token:  {settings.admin_token}")


def _run(app: Any, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_keep_alive=KEEP_ALIVE_SECONDS, **serve_ops.proxy_kwargs())


def _port_free(host: str, port: int) -> None:
    """Fail before the banner when the port is taken: the banner's URLs would point at someone else's server."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserFacingError(f"port {port} on {host} is already in use (another server is listening): "
                                      f"pick a free one with --port {port + 1} (make demo PORT={port + 1})") from None
            raise UserFacingError(f"cannot listen on {host}:{port}: {exc.strerror} (check --host and --port)") from None


def _serve(settings: Any, study: Any, host: str, port: int, workers: int, check: bool, show_token: bool,
           study_path: str | None, model_spec: str | None) -> None:
    from thoughttrace.collect.app import create_app

    _port_free(host, port)
    _check_models(study)
    schema_line = serve_ops.schema_gate(settings.db_url)  # older: upgraded (or refused); newer: refused
    app = create_app(settings, study)  # migrations run here: a bad database fails now
    _banner(host, port, settings, study, show_token)
    serve_ops.banner_lines(host, port, workers, settings, study, schema_line)
    if check:
        return
    click.echo("  stop with Ctrl-C", err=True)
    if workers > 1:
        import uvicorn

        os.environ.update({"THOUGHTTRACE_DB_URL": settings.db_url, "THOUGHTTRACE_ADMIN_TOKEN": settings.admin_token,
                           "THOUGHTTRACE_SECRET_KEY": settings.secret_key, "THOUGHTTRACE_MODE": settings.mode})
        if study_path:
            os.environ["THOUGHTTRACE_STUDY"] = str(Path(study_path).resolve())
        if model_spec:
            os.environ["THOUGHTTRACE_MODEL"] = model_spec
        app.state.ctx.db.dispose()
        serve_ops.prepare_worker_metrics(workers)
        uvicorn.run("thoughttrace.collect.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                    **serve_ops.proxy_kwargs())
        return
    _run(app, host, port)


def _common(fn: Any) -> Any:
    opts = [
        click.option("--db", "db_url", default=None, help="database URL: sqlite:///FILE (default) or "
                     "postgresql+psycopg://USER:PW@HOST/DB (env THOUGHTTRACE_DB_URL)"),
        click.option("--study", "study_path", type=click.Path(dir_okay=False), default=None,
                     help="study config (.yaml/.toml); default: the packaged demo study (env THOUGHTTRACE_STUDY)"),
        click.option("--model", "-m", "model_spec", default=None,
                     help="use this one model string for every conversation instead of the study's pool"),
        click.option("--host", default="127.0.0.1", show_default=True),
        click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535)),
        click.option("--check", is_flag=True, help="set everything up (database, model), print the URLs, exit"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.command("serve")
@_common
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="app processes (use PostgreSQL for more than one)")
@click.option("--trusted-proxy", default=None, help="addresses whose X-Forwarded-For/-Proto are believed (comma "
              "list; 'none'); default 127.0.0.1, a proxy on this host (env THOUGHTTRACE_TRUSTED_PROXIES)")
@click.option("--secure-cookies", is_flag=True, default=False, help="mark cookies Secure (behind HTTPS; env "
              "THOUGHTTRACE_SECURE_COOKIES=1)")
def command(db_url: str | None, study_path: str | None, model_spec: str | None, host: str, port: int, check: bool,
            workers: int, trusted_proxy: str | None, secure_cookies: bool) -> None:
    """Run the study platform (production mode: THOUGHTTRACE_ADMIN_TOKEN and THOUGHTTRACE_SECRET_KEY must be set)."""
    if trusted_proxy is not None:
        os.environ[serve_ops.TRUSTED_ENV] = trusted_proxy
    if secure_cookies:
        os.environ["THOUGHTTRACE_SECURE_COOKIES"] = "1"  # the workers read it too
    serve_ops.request_log_on()
    study_path = study_path or os.environ.get("THOUGHTTRACE_STUDY")
    mode = os.environ.get("THOUGHTTRACE_MODE", "production")
    settings = _settings(mode, db_url)
    if workers > 1 and settings.db_url.startswith("sqlite"):
        raise UserFacingError("several workers need PostgreSQL (--db postgresql+psycopg://...); SQLite takes one")
    _serve(settings, _study(study_path, model_spec), host, port, workers, check, mode != "production",
           study_path, model_spec)


@click.command("demo")
@_common
def demo_command(db_url: str | None, study_path: str | None, model_spec: str | None, host: str, port: int,
                 check: bool) -> None:
    """Try the platform: SQLite, the embedded local model and the demo study; prints the URLs and admin token."""
    settings = _settings("demo", db_url or f"sqlite:///{DEMO_DB}")
    _serve(settings, _study(study_path, model_spec), host, port, 1, check, True, study_path, model_spec)
