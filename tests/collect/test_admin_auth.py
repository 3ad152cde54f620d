"""Admin credentials: bearer and form failures share one throttle keyed by the real client address and the
token tried (X-Forwarded-For believed only from configured proxies, through a real uvicorn server),
failures are logged, production refuses low-entropy tokens, log out ends the session on the server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from collect_helpers import free_port

from thoughttrace.collect.settings import Settings, SettingsError

TOKEN = "admin-token-for-tests-0123"


@contextmanager
def served(app: Any, trusted: str | None) -> Iterator[str]:
    """The app behind a real uvicorn server; `trusted`: the proxies whose X-Forwarded-For it believes."""
    port = free_port()
    kw: dict[str, Any] = ({"proxy_headers": False} if trusted is None
                          else {"proxy_headers": True, "forwarded_allow_ips": trusted})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **kw))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(10)


def bearer(token: str, xff: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    if xff:
        h["X-Forwarded-For"] = xff
    return h


def test_wrong_bearer_tokens_are_throttled_and_logged(app_maker, caplog):
    client, _app, _ = app_maker()
    c = client()
    caplog.set_level(logging.WARNING, logger="thoughttrace.collect.admin")
    codes = [c.get("/admin/api/progress", headers=bearer(f"guess-{i:04d}")).status_code for i in range(40)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
    failed = [r for r in caplog.records if "failed: wrong token" in r.getMessage()]
    assert len(failed) == 5 and all("guess-" not in r.getMessage() for r in caplog.records)  # hashes, never tokens
    assert sum("refused: locked out" in r.getMessage() for r in caplog.records) == 35
    # the lock holds for the right token and for the login form: one throttle
    assert c.get("/admin/api/progress", headers=bearer(TOKEN)).status_code == 429
    r = c.post("/admin/login", data={"token": TOKEN})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_form_failures_lock_out_bearer_tokens_too(app_maker):
    client, _app, _ = app_maker()
    c = client()
    for _ in range(5):
        assert c.post("/admin/login", data={"token": "guess"}).status_code == 401
    assert c.get("/admin/api/progress", headers=bearer(TOKEN)).status_code == 429


def test_a_forged_forwarded_for_does_not_dodge_the_lock(app_maker):
    _client, app, _ = app_maker()
    # no proxy configured: the header is not believed at all
    with served(app, trusted=None) as base:
        codes = [httpx.get(f"{base}/admin/api/progress", headers=bearer(f"guess-{i}", f"198.51.100.{i}")).status_code
                 for i in range(7)]  # a new token and a new forged address each time: only the real one counts
    assert codes == [401] * 5 + [429] * 2


def test_behind_a_configured_proxy_the_real_client_address_counts(app_maker):
    _client, app, _ = app_maker()
    with served(app, trusted="127.0.0.1") as base:  # we are the proxy: it appends the real client address
        def get(token: str, forged: str, real: str) -> int:
            return httpx.get(f"{base}/admin/api/progress", headers=bearer(token, f"{forged}, {real}")).status_code

        codes = [get(f"guess-{i}", f"10.0.0.{i}", "203.0.113.7") for i in range(6)]
        assert codes == [401] * 5 + [429]  # the forged left-hand entries change nothing
        assert get(TOKEN, "10.0.0.99", "203.0.113.8") == 200  # another real client is not locked out
        # one token guessed from many addresses is locked out too (the token tried is a key)
        codes = [get("one-guess", "x", f"192.0.2.{i}") for i in range(6)]
        assert codes == [401] * 5 + [429]
        assert get(TOKEN, "x", "192.0.2.200") == 200


@pytest.mark.parametrize("token", ["aaaaaaaaaaaaaaaa", "a" * 64, "abababababababababababab", "Passw0rdPassw0rd",
                                   "abcdefghijklmnopqrstuvwxyz", "0123456789012345678901234"])
def test_production_refuses_low_entropy_admin_tokens(token):
    with pytest.raises(SettingsError, match="THOUGHTTRACE_ADMIN_TOKEN is too easy to guess"):
        Settings(mode="production", admin_token=token, secret_key="Jf5sW1gQ8vXe3Ku7Pa2Lr9Dm6Tb4Yc0N").checked()


def test_production_accepts_generated_tokens():
    import secrets

    for _ in range(50):
        Settings(mode="production", admin_token=secrets.token_urlsafe(16), secret_key=secrets.token_hex(16)).checked()


def test_log_out_ends_the_session_on_the_server(app_maker):
    client, _app, _ = app_maker()
    admin = client()
    assert admin.post("/admin/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    page = admin.get("/admin")
    assert page.status_code == 200
    kept = dict(admin.cookies)  # a copy of the cookie (another tab, a stolen copy)
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert admin.post("/admin/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    other = client()
    for k, v in kept.items():
        other.cookies.set(k, v)
    assert other.get("/admin", follow_redirects=False).status_code in (302, 303, 401)
    assert other.get("/admin/export.jsonl", follow_redirects=False).status_code in (302, 303, 401)
    # logging in again opens a new session; the old copy stays dead
    assert admin.post("/admin/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    assert admin.get("/admin").status_code == 200
    assert other.get("/admin", follow_redirects=False).status_code in (302, 303, 401)
