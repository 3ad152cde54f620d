"""Safe rendering: assistant Markdown becomes sanitised HTML; participant text is only ever escaped.

markdown-it-py runs with raw HTML disabled, and nh3 (ammonia) strips anything outside a small allow-list
afterwards, so neither a model answer nor a participant message can inject markup or script.
"""

from __future__ import annotations

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


@lru_cache(maxsize=4096)
def render_markdown(text: str) -> str:
    """Markdown to HTML that is safe to put in a page as is (cached: chat pages re-render old answers)."""
    html = _md().render(text)
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")
