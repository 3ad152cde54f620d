"""Verdict parsing (strict), retry with the error fed back, and the constrained fallback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.align.judge import VERDICTS, ajudge, parse_constrained, parse_verdict
from thoughttrace.llm import ParseError, get_model


@pytest.mark.parametrize("label", VERDICTS)
def test_parse_each_label(label):
    assert parse_verdict(f"My answer: ...\nBoth fine.\n\nMy final verdict is: [[{label}]]") == label


def test_parse_strictness():
    assert parse_verdict("[[A>B]] ... repeated: [[ A>B ]]") == "A>B"
    with pytest.raises(ParseError, match="conflicting"):
        parse_verdict("[[A>B]] no wait [[B>A]]")
    with pytest.raises(ParseError, match="no verdict") as err:
        parse_verdict("A is better than B. A>B")
    assert err.value.raw == "A is better than B. A>B"
    with pytest.raises(ParseError):
        parse_verdict("[[A>>>B]] [[C>D]]")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_property_text_without_brackets_never_parses(text):
    with pytest.raises(ParseError):
        parse_verdict(text.replace("[[", "[ ["))


@settings(max_examples=100, deadline=None)
@given(prefix=st.text(max_size=100).map(lambda s: s.replace("[[", "")), label=st.sampled_from(VERDICTS),
       suffix=st.text(max_size=100).map(lambda s: s.replace("[[", "")))
def test_property_one_label_anywhere_parses(prefix, label, suffix):
    assert parse_verdict(f"{prefix}[[{label}]]{suffix}") == label


def test_parse_constrained():
    assert parse_constrained('{"verdict": "B>>A"}') == "B>>A"
    with pytest.raises(ParseError):
        parse_constrained('{"verdict": "A>>>B"}')
    with pytest.raises(ParseError):
        parse_constrained("B is better")


async def test_retry_feeds_the_error_back():
    judge = get_model("scripted", cache=False, outputs=["My answer: 4. Both are right.", "[[A=B]]"])
    verdict, attempts, fallback, raw = await ajudge(judge, "2+2?", "4", "four")
    assert (verdict, attempts, fallback, raw) == ("A=B", 2, False, "[[A=B]]")
    second = judge.backend.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "My answer: 4. Both are right."}
    assert "no verdict label" in second[-1]["content"]


async def test_constrained_fallback_then_none():
    def fn(msgs, cfg):
        return '{"verdict": "B>A"}' if cfg.json_schema else "I cannot decide."

    judge = get_model("scripted", cache=False, fn=fn)
    verdict, attempts, fallback, _ = await ajudge(judge, "q", "a", "b", retries=1)
    assert (verdict, attempts, fallback) == ("B>A", 3, True)
    never = get_model("scripted", cache=False, outputs=["no idea"])
    verdict, attempts, fallback, raw = await ajudge(never, "q", "a", "b", retries=1)
    assert verdict is None and attempts == 3 and not fallback and "no idea" in raw


async def test_judge_prompt_shows_question_and_both_answers():
    judge = get_model("scripted", cache=False, outputs=["[[B>A]]"])
    await ajudge(judge, "QUESTION-X", "ANSWER-ONE", "ANSWER-TWO")
    system, user = judge.backend.requests[0]["messages"]
    assert "your own answer" in system["content"] and "[[A>>B]]" in system["content"]
    assert user["content"].index("ANSWER-ONE") < user["content"].index("ANSWER-TWO")
    assert "QUESTION-X" in user["content"]


def test_a_constrained_reply_without_an_opening_brace_is_no_json_object() -> None:
    with pytest.raises(ParseError, match="no JSON object"):
        parse_constrained('verdict: "A>B"}')
