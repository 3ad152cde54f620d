"""Real-browser tests of the study's other paths and of recovery: decline, screen-out, a survey sent with
a missing answer, a stream the server cuts mid-answer, the timer during a streaming answer, and a failed
attention check as the researcher sees it (admin list and CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from collect_helpers import scripted_pool
from collect_helpers import study as make_study
from test_browser import TOKEN, Server

from thoughttrace.collect.app import create_app
from thoughttrace.collect.settings import Settings
from thoughttrace.llm.backends.scripted import ScriptedBackend
from thoughttrace.llm.model import Model
from thoughttrace.llm.types import ChatMessage, Generation, GenerationConfig

pytestmark = pytest.mark.browser
CODES = {"completed": "DONE1", "declined": "DECL1", "screened_out": "SCRN1", "timed_out": "TIME1"}
SURVEY = [
    {"id": "age", "type": "number", "question": "Your age", "min": 18, "max": 99},
    {"id": "country", "type": "single", "question": "Country", "options": ["France", "Germany", "Other"]},
    {"id": "tools", "type": "multiple", "question": "Tools", "options": ["ChatGPT", "Claude", "Gemini"]},
    {"id": "trust", "type": "likert", "question": "I trust AI answers", "scale": 5},
    {"id": "check", "type": "single", "question": "To show you read this, choose 'Green'",
     "options": ["Red", "Green"], "attention_check": "Green"},
    {"id": "why", "type": "text", "question": "Why do you use them?", "max_chars": 300},
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Any]:
    def make(models: Any = None, **overrides: Any) -> Server:
        settings = Settings(db_url=f"sqlite:///{tmp_path / 'paths.sqlite'}", mode="test", admin_token=TOKEN,
                            secret_key="secret-key-for-tests-0123456789")
        options = {"tasks_per_participant": 1, "completion_codes": CODES, **overrides}
        return Server(create_app(settings, make_study(**options), models=models or scripted_pool()))

    yield make


def enter(page: Any, base: str, pid: str = "brow1") -> None:
    page.set_default_timeout(15_000)
    page.goto(f"{base}/start?PROLIFIC_PID={pid}&STUDY_ID=st&SESSION_ID=se-{pid}")


def to_chat(page: Any) -> None:
    page.check("#agree")
    page.click("#consent-submit")
    page.check("#q0-1")
    page.check("#q1-1")
    page.click("#quiz-submit")
    page.fill("#task", "Plan a trip")
    page.click("#task-submit")
    page.wait_for_selector("#composer")


def chat_once(page: Any) -> None:
    page.fill("#message", "Where should I go?")
    page.fill("#reason", "I need an idea for the weekend")
    page.click("#send")
    page.wait_for_selector("#reaction-box:not([hidden])")
    page.fill("#reaction", "a useful first idea")
    page.click("#reaction-submit")
    page.wait_for_selector("li.msg.assistant .note")


def test_decline_consent_shows_its_completion_code(live, page):
    with live() as server:
        enter(page, server.base)
        page.click("#consent-decline")
        page.wait_for_selector("#end")
        assert page.get_attribute("#end", "data-outcome") == "declined"
        assert page.inner_text("#completion-code") == "DECL1"
        assert page.get_attribute("#completion-link", "href").endswith("cc=DECL1")
        page.goto(f"{server.base}/task")  # nothing else opens any more
        assert page.url.endswith("/end")


def test_screen_out_shows_its_completion_code(live, page):
    screening = [{"id": "uses_ai", "type": "single", "question": "Do you use AI assistants?",
                  "options": ["Yes", "No"], "screen_out_if": ["No"]}]
    with live(screening=screening) as server:
        enter(page, server.base)
        page.check("#agree")
        page.click("#consent-submit")
        page.select_option("#uses_ai", "No")
        page.click("#items-submit")
        page.wait_for_selector("#end")
        assert page.get_attribute("#end", "data-outcome") == "screened_out"
        assert page.inner_text("#completion-code") == "SCRN1"


def to_survey(page):
    """Chat once, finish the task and write its summary: the survey page is next."""
    to_chat(page)
    chat_once(page)
    page.click("#finish")
    page.fill("#summary", "I planned a trip")
    page.fill("#expectation", "Ideas")
    page.click("#summary-submit")


def test_survey_with_a_missing_answer_keeps_every_answer(live, page):
    with live(survey_items=SURVEY) as server:
        enter(page, server.base)
        to_survey(page)
        page.fill("#age", "42")
        page.select_option("#country", "Germany")
        page.check("#tools-0")
        page.check("#tools-2")
        page.select_option("#check", "Green")
        page.fill("#why", "For work & <b>fun</b>")
        # 'trust' (likert) is left out
        page.click("#items-submit")
        page.wait_for_selector("#items-error")
        assert page.locator(".item.missing").count() == 1
        assert page.is_visible("#problem-trust") and "please answer" in page.inner_text("#problem-trust")
        assert page.input_value("#age") == "42" and page.input_value("#country") == "Germany"
        assert page.is_checked("#tools-0") and not page.is_checked("#tools-1") and page.is_checked("#tools-2")
        assert page.input_value("#check") == "Green" and page.input_value("#why") == "For work & <b>fun</b>"
        page.check("#trust-4")
        page.click("#items-submit")
        page.wait_for_selector("#done")
        assert page.inner_text("#completion-code") == "DONE1"


class _CutMidStream(ScriptedBackend):
    """The first answer streams two pieces, then the server process breaks the connection (an unexpected
    error ends the response without its closing event); later answers are whole."""

    def __init__(self) -> None:
        super().__init__(outputs=["The whole answer, second try."])
        self.cut = True

    async def stream(self, messages: list[ChatMessage], config: GenerationConfig) -> AsyncIterator[str | Generation]:
        if self.cut:
            self.cut = False
            yield "A half-written "
            yield "answer"
            import asyncio

            await asyncio.sleep(0.3)
            raise RuntimeError("connection to the model dropped")
        async for item in super().stream(messages, config):
            yield item


def test_a_stream_cut_by_the_server_recovers_with_retry(live, page):
    pool = {k: Model(_CutMidStream(), max_retries=0) for k in ("alpha", "beta")}
    with live(models=pool) as server:
        enter(page, server.base)
        to_chat(page)
        page.evaluate("window.__same_page = 1")
        page.fill("#message", "Help me plan")
        page.fill("#reason", "to get started quickly")
        page.click("#send")
        page.wait_for_selector("#retry:not([hidden])")
        assert "press Retry" in page.inner_text("#status")
        assert page.locator("li.msg.assistant").count() == 0  # the half answer is not left on the page
        assert page.is_disabled("#send") and page.locator("li.msg.user").count() == 1
        page.click("#retry")
        page.wait_for_selector("li.msg.assistant .md")
        assert page.inner_text("li.msg.assistant .md") == "The whole answer, second try."
        assert page.evaluate("window.__same_page") == 1, "recovery needed a reload"
        page.wait_for_selector("#reaction-box:not([hidden])")


def test_the_timer_waits_for_a_streaming_answer(live, page):
    slow = {k: Model(ScriptedBackend(default=" ".join(f"word{i}" for i in range(14)), delay=0.35), max_retries=0)
            for k in ("alpha", "beta")}
    with live(models=slow, timer_minutes=0.06) as server:  # 3.6 s task, ~5 s answer
        enter(page, server.base)
        to_chat(page)
        page.fill("#message", "Tell me a long story")
        page.fill("#reason", "to test the timer")
        page.click("#send")
        page.wait_for_selector("li.msg.assistant.streaming")
        import time

        deadline = time.monotonic() + 10  # (wait_for_function would eval a string: the page's CSP forbids it)
        while not page.inner_text("#timer").startswith("0:00 ") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page.inner_text("#timer").startswith("0:00 ") and page.locator("li.msg.assistant.streaming").count()
        assert "/c/" in page.url and not page.url.endswith("/summary")  # not finished mid-stream
        page.wait_for_selector("li.msg.assistant .md", timeout=15_000)
        assert "word13" in page.inner_text("li.msg.assistant .md")
        assert "/summary" not in page.url  # the answer arrived whole; the task ends only after the reaction
        page.fill("#reaction", "a long and complete story")
        page.click("#reaction-submit")
        page.wait_for_url("**/summary")


def test_failed_attention_check_flag_in_admin_and_csv(live, page, tmp_path):
    with live(survey_items=SURVEY) as server:
        enter(page, server.base, pid="careless1")
        to_survey(page)
        page.fill("#age", "30")
        page.select_option("#country", "France")
        page.check("#tools-1")
        page.check("#trust-3")
        page.select_option("#check", "Red")  # the instructed answer was Green
        page.fill("#why", "Mostly for writing emails at work")
        page.click("#items-submit")
        page.wait_for_selector("#done")
        page.goto(f"{server.base}/admin/login")
        page.fill("#token", TOKEN)
        page.click("#login")
        page.goto(f"{server.base}/admin/conversations")
        row = page.locator("#participants tr", has_text="careless1")
        assert row.locator('.flag[data-flag="attention_check_failed"]').is_visible()
        page.select_option("#filter-flag", "attention_check_failed")
        page.click("#filters button")
        assert "1 participant(s) match" in page.inner_text("#match-count")
        with page.expect_download() as dl:
            page.click("#participants-csv")
        out = tmp_path / "participants.csv"
        dl.value.save_as(out)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 1 and rows[0]["prolific_pid"] == "careless1"
    assert rows[0]["flag_attention_check_failed"] == "1" and "attention_check_failed=1" in rows[0]["quality_flags"]
