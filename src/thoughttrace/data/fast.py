"""A fast validating reader for whole-file passes (`data stats`, `data validate`): msgspec first, pydantic's word.

Two thirds of `data stats` went into building pydantic models that the counting then barely touches. Here
each line is decoded by msgspec into light structs that mirror `schema.Conversation` field for field, so
every line is still validated (types, required fields, `type` in user/assistant, thoughts on the right
side), in C and without the models. The fast path is conservative: a line it accepts is one pydantic
accepts too, and anything it does not accept in full goes to `io.parse_line` (pydantic), which either
accepts it (a release-1 alias such as `text`, a NaN in an extra field) or gives the usual line-numbered
message. So results and error messages are exactly those of the pydantic reader, only sooner.

Where msgspec is not installed the reader is `io.iter_conversations`, unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from .io import ReadReport, bad_line, iter_conversations, numbered_lines, parse_line
from .schema import user_key_of

try:  # a core dependency; the import is guarded so an environment without it still reads (slower)
    import msgspec
except ImportError:  # pragma: no cover - exercised only where msgspec is missing
    msgspec = None  # type: ignore[assignment]

#: pydantic's JSON parser stops at ~200 levels (the pydantic reader then re-parses with `json`, whose limit
#: is Python's recursion limit, as msgspec's roughly is): a line with more brackets than this might be that
#: deep, so the pydantic reader decides it, and no depth near a limit can get two verdicts (rare: 190
#: objects or arrays in one line)
MAX_BRACKETS = 190

if msgspec is not None:

    class FastThought(msgspec.Struct, gc=False):
        """`schema.Thought` (release-2 names only; `text` goes the pydantic way)."""

        content: str
        timestamp: str | None = None
        label: str | None = None

    class FastMessage(msgspec.Struct, gc=False):
        """`schema.Message`: the same fields and types."""

        id: str
        type: Literal["user", "assistant"]
        content: str
        timestamp: str | None = None
        reasons: list[FastThought] | None = None
        reactions: list[FastThought] | None = None

    class FastConversation(msgspec.Struct, gc=False):
        """`schema.Conversation`: the same fields and types; extra fields are skipped (still parsed as JSON)."""

        id: str
        messages: list[FastMessage]
        model_name: str | None = None
        model_provider: str | None = None
        created_at: str | None = None
        updated_at: str | None = None
        task_summary: str | None = None
        task_expectation: str | None = None
        survey_answers: list[Any] | dict[str, Any] | None = None
        domain: str | None = None
        topic: str | None = None
        user_id: str | None = None

        def user_key(self) -> str:
            """As `Conversation.user_key`: the one rule, so user counts agree."""
            return user_key_of(self.id, self.user_id)

    _DECODER = msgspec.json.Decoder(FastConversation)


def fast_parse(text: bytes) -> Any:
    """The line as a `FastConversation`, or None when pydantic must decide (never a wrong acceptance)."""
    if text.count(b"{") + text.count(b"[") > MAX_BRACKETS:
        return None
    try:
        conv = _DECODER.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    for m in conv.messages:  # schema.Message's validator: thoughts only on their own side
        if (m.reactions if m.type == "user" else m.reasons):
            return None
    return conv


def iter_validated(path: str | Path, *, skip_invalid: bool = False, report: ReadReport | None = None) -> Iterator[Any]:
    """Like `io.iter_conversations` (same checks, errors and report) but yielding fast structs where it can.

    What comes out has the attributes the whole-file passes read (`messages`, `type`, `reasons`,
    `reactions`, `label`, `model_name`, `domain`, `user_key()`): a `FastConversation`, or a pydantic
    `Conversation` for a line only pydantic accepts.
    """
    if msgspec is None:
        yield from iter_conversations(path, skip_invalid=skip_invalid, report=report)
        return
    report = report if report is not None else ReadReport()
    for line_no, text in numbered_lines(path):
        conv = fast_parse(text)
        if conv is None:
            if not text.strip():
                continue
            conv, errors = parse_line(text, line_no)
            if conv is None:
                report.lines += 1
                report.errors.extend(errors)
                if not skip_invalid:
                    raise bad_line(path, errors)
                continue
        report.lines += 1
        report.valid += 1
        yield conv
