"""Real-browser tests: headless Debian chromium through Playwright drives the whole journey."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from collect_helpers import finish_with_summary_and_survey, free_port, scripted_pool
from collect_helpers import study as make_study

from thoughttrace.collect.app import create_app
from thoughttrace.collect.settings import Settings
from thoughttrace.data import validate_file
from thoughttrace.llm import get_model
from thoughttrace.llm.errors import ServerError

pytestmark = pytest.mark.browser
TOKEN = "admin-token-for-tests-0123"
ANSWER = ("Here is a plan:\n\n1. **Saturday**: visit the old town\n2. **Sunday**: a walk by the lake\n\n"
          "| time | what |\n|---|---|\n| 10:00 | museum |\n\n<script>window.__pwned = 1</script>")


class Server:
    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Any]:
    def make(models: Any = None, **overrides: Any) -> tuple[Server, Any]:
        settings = Settings(db_url=f"sqlite:///{tmp_path / 'browser.sqlite'}", mode="test", admin_token=TOKEN,
                            secret_key="secret-key-for-tests-0123456789")
        pool = models or scripted_pool(lambda msgs, cfg: ANSWER)
        app = create_app(settings, make_study(tasks_per_participant=1, labels="optional", **overrides), models=pool)
        return Server(app), pool

    yield make


def test_whole_journey_in_a_real_browser(live, page, artifacts_dir, tmp_path):
    server, pool = live()
    page.set_default_timeout(15_000)
    with server:
        base = server.base
        page.goto(f"{base}/start?PROLIFIC_PID=browserpid&STUDY_ID=st1&SESSION_ID=se1")
        page.check("#agree")
        page.click("#consent-submit")
        # the quiz refuses a wrong answer, then lets the participant on
        page.check("#q0-0")
        page.check("#q1-1")
        page.click("#quiz-submit")
        assert page.locator("#quiz-error").is_visible()
        page.check("#q0-1")
        page.check("#q1-1")
        page.click("#quiz-submit")
        page.fill("#task", "Plan a weekend in Lyon")
        page.click("#task-submit")
        page.wait_for_selector("#composer")
        notes = []
        for i in range(2):
            reason, reaction = f"browser reason {i} <b>bold?</b>", f"browser reaction {i}"
            notes += [reason, reaction]
            page.fill("#message", f"Question {i}: what should I do on day {i + 1}?")
            page.fill("#reason", reason)
            if i == 0:
                page.select_option("#reason-label", "Task Motivation & Goal")
            # the reaction box is hidden until the answer has streamed in
            assert page.locator("#reaction-box").is_hidden()
            page.click("#send")
            page.wait_for_selector(f"li.msg.assistant:nth-of-type({2 * i + 2}) .md table")
            page.wait_for_selector("#reaction-box:not([hidden])")
            assert page.locator("#send").is_disabled()  # no new message before the reaction
            page.fill("#reaction", reaction)
            page.click("#reaction-submit")
            page.wait_for_selector(f"li.msg.assistant:nth-of-type({2 * i + 2}) .note")
        assert page.locator("#retry").is_hidden()
        assert page.evaluate("window.__pwned") is None  # the answer's <script> did not run
        assert page.locator("li.msg.user .note").nth(0).inner_text().endswith("browser reason 0 <b>bold?</b> [Task Motivation & Goal]")
        assert page.locator("li.msg.assistant strong").count() >= 4
        page.screenshot(path=str(artifacts_dir / "collect-chat.png"), full_page=True)
        # reload: everything is still there
        page.reload()
        page.wait_for_selector("li.msg.assistant:nth-of-type(4) .note")
        assert page.locator("li.msg").count() == 4
        finish_with_summary_and_survey(page, "I planned a weekend trip", "Concrete suggestions", purposes=(0, 4))
        assert "CODE123" in page.content()

        # the researcher logs in and downloads the export
        page.goto(f"{base}/admin/login")
        page.fill("#token", TOKEN)
        page.click("#login")
        assert "1 participants" in page.inner_text("#participants-count")
        assert page.locator("#per-model tr").count() == 3  # header, the one model used, total
        page.screenshot(path=str(artifacts_dir / "collect-admin.png"), full_page=True)
        with page.expect_download() as dl:
            page.click("#export-link")
        out = tmp_path / "export.jsonl"
        dl.value.save_as(out)
    report = validate_file(out)
    assert report.valid == 1 and not report.errors
    rec = json.loads(out.read_text())
    assert [m["type"] for m in rec["messages"]] == ["user", "assistant", "user", "assistant"]
    assert [t["content"] for m in rec["messages"] for t in m.get("reasons") or m.get("reactions")] == notes
    assert rec["messages"][0]["reasons"][0]["label"] == "Task Motivation & Goal"
    assert rec["survey_answers"][0]["purposes"] == "Work, Information seeking"
    assert "browserpid" not in out.read_text()
    seen = json.dumps([r for m in pool.values() for r in m.backend.requests])
    assert all(n not in seen for n in notes) and "Question 1" in seen


def test_retry_after_a_failed_answer_in_the_browser(live, page):
    state = {"fail": True}

    def answer(msgs: Any, cfg: Any) -> str:
        if state["fail"]:
            raise ServerError("down")
        return "Now it works."

    pool = {k: get_model("scripted", cache=False, fn=answer, max_retries=0) for k in ("alpha", "beta")}
    server, _ = live(models=pool)
    with server:
        page.goto(f"{server.base}/start")
        page.check("#agree")
        page.click("#consent-submit")
        page.check("#q0-1")
        page.check("#q1-1")
        page.click("#quiz-submit")
        page.fill("#task", "Anything")
        page.click("#task-submit")
        page.fill("#message", "Hello?")
        page.fill("#reason", "to start")
        page.click("#send")
        page.wait_for_selector("#retry:not([hidden])")
        assert "press Retry" in page.inner_text("#status")
        state["fail"] = False
        page.click("#retry")
        page.wait_for_selector("li.msg.assistant .md")
        assert page.inner_text("li.msg.assistant .md") == "Now it works."
        assert page.locator("li.msg.user").count() == 1
