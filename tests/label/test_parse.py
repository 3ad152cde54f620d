"""Strict label parsing: every accepted form maps to exactly the allowed label, anything else is a ParseError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.data import REASON_LABELS
from thoughttrace.label import parse_label
from thoughttrace.llm.errors import ParseError

ALLOWED = list(REASON_LABELS)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALLOWED), st.sampled_from(["", " ", "\n", '"', "**", "'"]), st.booleans(), st.booleans())
def test_decorated_labels_parse(label: str, wrap: str, upper: bool, period: bool) -> None:
    text = label.upper() if upper else label
    raw = f"{wrap}{text}{wrap[::-1]}{'.' if period else ''}\n"
    assert parse_label(raw, ALLOWED) == label


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_yields_a_guess(raw: str) -> None:
    try:
        got = parse_label(raw, ALLOWED)
    except ParseError as exc:
        assert exc.raw == raw
    else:  # only possible if the text really names a label
        assert got in ALLOWED
        assert got.casefold().split()[0] in raw.casefold()


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=len(ALLOWED)))
def test_numbered_answers(i: int) -> None:
    assert parse_label(f"{i}", ALLOWED, numbered=True) == ALLOWED[i - 1]
    assert parse_label(f"{i}. {ALLOWED[i - 1]}", ALLOWED, numbered=True) == ALLOWED[i - 1]


def test_forms_and_rejections() -> None:
    assert parse_label('{"label": "task continuation"}', ALLOWED) == "Task Continuation"
    assert parse_label("Label: Style Expectation", ALLOWED) == "Style Expectation"
    assert parse_label("Task Motivation and Goal", ALLOWED) == "Task Motivation & Goal"
    assert parse_label("Social & Others\nBecause the user greets.", ALLOWED) == "Social & Others"
    for bad in ["", "Task", "It is Task Continuation", "Continuation", '{"label": 3}', "{not json",
                "Task Continuation, Style Expectation"]:
        with pytest.raises(ParseError):
            parse_label(bad, ALLOWED)
    with pytest.raises(ParseError, match="out of range"):
        parse_label("9", ALLOWED, numbered=True)
    with pytest.raises(ParseError, match="also says"):
        parse_label("2. Style Expectation", ALLOWED, numbered=True)
    with pytest.raises(ParseError):
        parse_label("2", ALLOWED)  # numbers only count when the prompt numbered the options
