"""An answer cut at its token limit still renders as Markdown (issue 22): nothing open shows as raw marks."""

from __future__ import annotations

import pytest

from thoughttrace.collect.render import close_open_markdown, render_markdown


@pytest.mark.parametrize(("cut", "html_has", "raw_gone"), [
    ("Steps:\n\n1. **Boil the pas", "<strong>Boil the pas</strong>", "**"),
    ("Code:\n\n```python\nprint(1", "<pre><code", "```"),
    ("Run `pip inst", "<code>pip inst</code>", "`"),
])
def test_a_cut_answer_renders_without_raw_marks(cut: str, html_has: str, raw_gone: str) -> None:
    html = render_markdown(cut)
    assert html_has in html
    assert raw_gone not in html


@pytest.mark.parametrize("whole", [
    "All **good** here.", "x **a** and **b**", "```\ncode\n```\n\nAfter `it`.", "5 * 3 = 15", "",
])
def test_a_complete_answer_is_left_as_it_is(whole: str) -> None:
    assert close_open_markdown(whole) == whole


def test_only_the_last_paragraph_is_mended() -> None:
    text = "A stray ** in an early paragraph.\n\nThe end is fine."
    assert close_open_markdown(text) == text
