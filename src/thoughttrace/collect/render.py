"""Safe rendering: assistant Markdown becomes sanitised HTML; participant text is only ever escaped.

markdown-it-py runs with raw HTML disabled, and nh3 (ammonia) strips anything outside a small allow-list
afterwards, so neither a model answer nor a participant message can inject markup or script.
"""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}, "ol": {"start"}}


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)


def close_open_markdown(text: str) -> str:
    """Close what an answer cut at its token limit left open, so it renders as Markdown, not as raw marks.

    Why: an answer stopped mid-way ("**Step 2: pre" or inside a code block) showed its asterisks and backticks
    to the participant. Only the end can be cut, so only the trailing paragraph (or an open code block) is
    mended: an unclosed fence is closed, and an odd `**` or inline backtick in the last paragraph is paired.
    A complete answer has nothing open and is returned unchanged."""
    fences = _FENCE.findall(text)
    if len(fences) % 2 == 1:
        return text + "\n" + fences[-1]
    last = re.split(r"\n\s*\n", text)[-1]
    if _FENCE.search(last):
        return text
    tail = ""
    if last.count("`") % 2 == 1:
        tail += "`"
    if last.replace("`", "").count("**") % 2 == 1 and not last.rstrip().endswith("**"):
        tail += "**"
    return text.rstrip() + tail if tail else text


@lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to put in a page as is (cached: chat pages re-render old answers).

    Open constructs at the end (a cut answer) are closed first: see `close_open_markdown`."""
    html = _md().render(close_open_markdown(text))
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")
