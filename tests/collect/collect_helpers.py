"""Drive the study platform through HTTP like a participant's browser would (TestClient or httpx)."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from thoughttrace.collect.study import StudyConfig, parse_study
from thoughttrace.llm import Model, get_model

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
DATA_CSRF_RE = re.compile(r'data-csrf="([^"]+)"')


def study(**overrides: Any) -> StudyConfig:
    data: dict[str, Any] = {
        "name": "test",
        "models": [
            {"key": "alpha", "spec": "scripted", "name": "Alpha", "provider": "Lab A", "system_prompt": "SYS-ALPHA"},
            {"key": "beta", "spec": "scripted", "name": "Beta", "provider": "Lab B", "system_prompt": "SYS-BETA"},
        ],
        "tasks_per_participant": 2,
        "prolific_completion_code": "CODE123",
    }
    data.update(overrides)
    return parse_study(data)


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html) or DATA_CSRF_RE.search(html)
    assert m, "no csrf token on the page"
    return m.group(1)


def key() -> str:
    return uuid.uuid4().hex


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Participant:
    """A participant's browser: one cookie jar, the CSRF token of the pages it saw."""

    def __init__(self, client: httpx.Client, **prolific: str) -> None:
        self.c = client
        self.prolific = prolific
        self.csrf = ""
        self.cid = ""

    def get(self, url: str) -> httpx.Response:
        r = self.c.get(url, follow_redirects=True)
        if 'csrf' in r.text:
            m = CSRF_RE.search(r.text) or DATA_CSRF_RE.search(r.text)
            if m:
                self.csrf = m.group(1)
        return r

    def form(self, url: str, data: dict[str, Any]) -> httpx.Response:
        return self.c.post(url, data={"csrf_token": self.csrf, **data}, follow_redirects=True)

    def api(self, url: str, body: dict[str, Any] | None = None, csrf: str | None = None) -> httpx.Response:
        return self.c.post(url, json=body or {}, headers={"X-CSRF-Token": self.csrf if csrf is None else csrf})

    # -- steps -------------------------------------------------------------------------------------
    def start(self) -> httpx.Response:
        q = "&".join(f"{k}={v}" for k, v in self.prolific.items())
        return self.get("/start" + (f"?{q}" if q else ""))

    def consent(self) -> httpx.Response:
        self.get("/consent")
        return self.form("/consent", {"agree": "yes"})

    def quiz(self, answers: dict[str, str] | None = None) -> httpx.Response:
        self.get("/tutorial")
        return self.form("/tutorial", answers or {"q0": "1", "q1": "1"})

    def task(self, text: str = "Plan a weekend trip") -> httpx.Response:
        self.get("/task")
        r = self.form("/task", {"task": text})
        assert r.status_code == 200, r.text
        self.cid = str(r.url).rstrip("/").split("/c/")[1]
        return r

    def send(self, content: str, reason: str, k: str | None = None, label: str | None = None) -> httpx.Response:
        return self.api(f"/api/c/{self.cid}/messages",
                        {"content": content, "reason": reason, "idempotency_key": k or key(), "reason_label": label})

    def generate(self) -> httpx.Response:
        return self.api(f"/api/c/{self.cid}/generate")

    def react(self, mid: str, content: str, k: str | None = None, label: str | None = None) -> httpx.Response:
        return self.api(f"/api/c/{self.cid}/messages/{mid}/reaction",
                        {"content": content, "idempotency_key": k or key(), "label": label})

    def turn(self, content: str, reason: str, reaction: str) -> str:
        r = self.send(content, reason)
        assert r.status_code == 201, r.text
        g = self.generate()
        assert g.status_code == 200, g.text
        done = ndjson(g.text)[-1]
        assert done["type"] == "done"
        r = self.react(done["message_id"], reaction)
        assert r.status_code == 201, r.text
        return str(done["message_id"])

    def finish(self) -> httpx.Response:
        return self.form(f"/c/{self.cid}/finish", {})

    def summary(self, summary: str = "I planned a trip", expectation: str = "Good ideas") -> httpx.Response:
        self.get(f"/c/{self.cid}/summary")
        return self.form(f"/c/{self.cid}/summary", {"summary": summary, "expectation": expectation})

    def survey(self) -> httpx.Response:
        self.get("/survey")
        return self.c.post("/survey", data={
            "csrf_token": self.csrf, "age": "34", "gender": "Woman", "education": "Master's degree",
            "occupation": "Nurse", "ai_use_frequency": "4", "purposes": ["Work", "Writing"]}, follow_redirects=True)

    def full_journey(self, turns: int = 2, tasks: int = 2) -> list[str]:
        """Every step; returns the notes written (for checks that they never reach the model)."""
        notes: list[str] = []
        self.start()
        self.consent()
        self.quiz()
        for t in range(tasks):
            self.task(f"Task number {t}")
            for i in range(turns):
                reason, reaction = f"REASON-{t}-{i}-{uuid.uuid4().hex[:6]}", f"REACTION-{t}-{i}-{uuid.uuid4().hex[:6]}"
                notes += [reason, reaction]
                self.turn(f"message {t}.{i}", reason, reaction)
            r = self.finish()
            assert r.status_code == 200 and "/summary" in str(r.url), r.text
            r = self.summary()
            assert r.status_code == 200, r.text
        r = self.survey()
        assert r.status_code == 200 and str(r.url).endswith("/done"), r.text
        return notes


# ----------------------------------------------------------------------------- a real server process
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SCRIPTED_STUDY_YAML = """\
format_version: 1
name: {name}
tasks_per_participant: 2
timer_minutes: 10
prolific_completion_code: CODE123
models:
  - key: alpha
    spec: scripted
    name: Alpha
    provider: Lab A
    options: {{outputs: ["First **answer**.", "Second answer with a list:\\n\\n- one\\n- two"]}}
  - key: beta
    spec: scripted
    name: Beta
    provider: Lab B
    options: {{default: "A scripted answer from Beta."}}
"""

TEST_ENV = {"THOUGHTTRACE_MODE": "test", "THOUGHTTRACE_ADMIN_TOKEN": "admin-token-for-tests-0123",
            "THOUGHTTRACE_SECRET_KEY": "secret-key-for-tests-0123456789"}


def write_study(path: Any, name: str = "test") -> Any:
    path.write_text(SCRIPTED_STUDY_YAML.format(name=name), encoding="utf-8")
    return path


def start_server(db_url: str, study_path: Any, port: int, env: dict[str, str] | None = None, workers: int = 1) -> Any:
    """`thoughttrace serve` in a subprocess; returns the Popen once /healthz answers."""
    import os
    import subprocess
    import sys
    import time

    full_env = {**os.environ, **TEST_ENV, **(env or {})}
    # the server's output (banner, one request-log line per request) goes to a file: a pipe nobody reads
    # fills after a few hundred requests and then blocks every worker on its next log line
    log = tempfile.NamedTemporaryFile(prefix="thoughttrace-serve-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "thoughttrace", "serve", "--db", db_url, "--study", str(study_path),
         "--port", str(port), "--workers", str(workers)], env=full_env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)  # its own process group: stop_server ends the workers too
    log.close()
    proc.log_path = log.name  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = Path(log.name).read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"server exited with {proc.returncode}: {out}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def stop_server(proc: Any, sig: int | None = None) -> None:
    """End a server from `start_server` and every worker process it forked (its whole process group)."""
    import os
    import signal
    import subprocess

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig or signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    if getattr(proc, "log_path", None):
        Path(proc.log_path).unlink(missing_ok=True)


def scripted_pool(fn: Callable[..., str] | None = None) -> dict[str, Model]:
    def answer(msgs: Any, cfg: Any) -> str:
        return f"**Answer** number {sum(1 for m in msgs if m.role == 'user')}: {msgs[-1].content}"

    return {k: get_model("scripted", cache=False, fn=fn or answer) for k in ("alpha", "beta")}


def fresh_pg_url(base: str) -> tuple[str, Callable[[], None]]:
    """A URL whose search_path is a new, empty schema; the cleanup drops it."""
    schema = "tt_" + secrets.token_hex(6)
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()

    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def finish_with_summary_and_survey(page: Any, summary: str, expectation: str, purposes: tuple[int, ...] = (0,)) -> None:
    """In a real browser: finish the open chat, write its summary and fill the closing survey to the done page."""
    page.click("#finish")
    page.fill("#summary", summary)
    page.fill("#expectation", expectation)
    page.click("#summary-submit")
    page.fill("#age", "41")
    page.select_option("#gender", "Man")
    page.select_option("#education", "Doctorate")
    page.fill("#occupation", "Teacher")
    page.check("#ai_use_frequency-3")
    for i in purposes:
        page.check(f"#purposes-{i}")
    page.click("#items-submit")
    page.wait_for_selector("#done")
