"""Real-browser checks: problem marks on survey pages are styled, no "writing" is left once a stream is gone,
and an answer cut off before its end marker is shown as such with Retry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from test_browser_paths import SURVEY, enter, live, to_chat, to_survey  # noqa: F401 (live: a fixture)

from thoughttrace.llm.backends.scripted import ScriptedBackend
from thoughttrace.llm.model import Model
from thoughttrace.llm.types import ChatMessage, Generation, GenerationConfig, Usage

pytestmark = pytest.mark.browser
BAD = "rgb(179, 38, 30)"  # --bad


def test_problem_marks_are_styled_and_readable(live, page, artifacts_dir):  # noqa: F811
    with live(survey_items=SURVEY) as server:
        enter(page, server.base)
        to_survey(page)
        page.fill("#age", "7")  # out of range
        page.click("#items-submit")
        page.wait_for_selector("#items-error")
        field = page.locator("#field-age")
        assert field.evaluate("e => getComputedStyle(e).borderTopColor") == BAD
        assert field.evaluate("e => getComputedStyle(e).borderTopWidth") == "2px"
        problem = page.locator("#problem-age")
        assert problem.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(253, 236, 234)"
        assert problem.evaluate("e => getComputedStyle(e).fontWeight") in ("600", "700")
        assert "please write a number from 18 to 99" in problem.inner_text()
        page.locator("#field-age").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts_dir / "collect-problem-marks.png"), full_page=True)


def test_no_writing_stays_when_the_connection_drops_before_the_answer(live, page):  # noqa: F811
    with live() as server:
        enter(page, server.base)
        to_chat(page)
        page.route("**/generate", lambda route: route.abort())  # the connection dies before any answer
        page.fill("#message", "Help me plan")
        page.fill("#reason", "to get started quickly")
        page.click("#send")
        page.wait_for_selector("#retry:not([hidden])")
        assert "writing" not in page.inner_text("#status") and "Retry" in page.inner_text("#status")
        page.unroute("**/generate")
        page.click("#retry")
        page.wait_for_selector("li.msg.assistant .md")
        assert page.inner_text("#status") == ""


class _NoEndMarker(ScriptedBackend):
    """The first answer's stream closes without a finish reason; later ones are whole."""

    def __init__(self) -> None:
        super().__init__(outputs=["The whole answer."])
        self.cut = True

    async def stream(self, messages: list[ChatMessage], config: GenerationConfig) -> AsyncIterator[str | Generation]:
        if self.cut:
            self.cut = False
            yield "The whole"
            yield Generation(text="The whole", usage=Usage(), finish_reason=None)
            return
        async for item in super().stream(messages, config):
            yield item


def test_an_answer_without_its_end_marker_is_offered_again(live, page):  # noqa: F811
    pool = {k: Model(_NoEndMarker(), max_retries=0) for k in ("alpha", "beta")}
    with live(models=pool) as server:
        enter(page, server.base)
        to_chat(page)
        page.fill("#message", "Help me plan")
        page.fill("#reason", "to get started quickly")
        page.click("#send")
        page.wait_for_selector("li.msg.assistant.incomplete")
        page.wait_for_selector("#retry:not([hidden])")
        assert "cut off" in page.inner_text("#status") and "writing" not in page.inner_text("#status")
        page.reload()  # the mark survives a reload
        page.wait_for_selector("li.msg.assistant.incomplete")
        assert "cut off" in page.inner_text("#status") and page.is_visible("#retry")
        page.click("#retry")
        page.wait_for_selector("li.msg.assistant:not(.incomplete) .md")
        assert page.locator("li.msg.assistant").count() == 1
        assert page.inner_text("li.msg.assistant .md") == "The whole answer."
        assert page.inner_text("#status") == "" and page.is_hidden("#retry")
