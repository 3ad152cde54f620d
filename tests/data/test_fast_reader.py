"""The fast validating reader of `data stats` / `data validate` (issue 25): msgspec first, pydantic's verdict.

Its one promise: never accept a line pydantic rejects, and for every line give the same figures, verdict and
message as the pydantic reader. Checked on hand-picked edge lines and on generated, mutated lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thoughttrace.data import Conversation, ReadReport, iter_conversations, validate_file
from thoughttrace.data.fast import fast_parse, iter_validated
from thoughttrace.data.io import parse_line
from thoughttrace.data.stats import compute_stats, stats_file

GOOD: dict[str, Any] = {"id": "user7_task1_conversation1", "model_name": "GPT-5.4", "domain": "Health & Relationships",
                        "survey_answers": {"age": "30-39"}, "messages": [
    {"id": "m0", "type": "user", "content": "hi", "reasons": [{"content": "greeting", "label": "Social & Others"}]},
    {"id": "m1", "type": "assistant", "content": "Hello!", "reactions": [{"content": "ok", "label": None}]},
]}


def _pydantic_ok(line: bytes) -> bool:
    """The pydantic reader's verdict (`io.parse_line`: pydantic's JSON parser, then `json` + pydantic)."""
    return parse_line(line, 1)[0] is not None


def _variant(**changes: Any) -> bytes:
    d = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        *head, last = path.split("__")
        node: Any = d
        for part in head:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is _DROP:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return json.dumps(d).encode()


_DROP = object()

EDGE = {
    "good": (_variant(), True),
    "user_id wins": (_variant(user_id="u-1"), True),
    "release-1 names (text, conversation_id)": (
        json.dumps({"conversation_id": "c1", "messages": [{"message_id": "m", "type": "user", "text": "x"}]}).encode(), True),
    "NaN in an extra field": (_variant().replace(b'"domain"', b'"x": NaN, "domain"'), True),
    "an id that is a number": (_variant(id=5), False),
    "no messages": (_variant(messages=_DROP), False),
    "system message": (_variant(messages__1__type="system"), False),
    "reaction on a user message": (_variant(messages__0__reactions=[{"content": "r"}]), False),
    "reason on an assistant message": (_variant(messages__1__reasons=[{"content": "r"}]), False),
    "empty thought lists on the wrong side are fine": (_variant(messages__0__reactions=[], messages__1__reasons=[]), True),
    "survey answers as a string": (_variant(survey_answers="yes"), False),
    "label as a number": (_variant(messages__0__reasons__0__label=3), False),
    "timestamp as a number": (_variant(messages__0__timestamp=3), False),
    "thought without content": (_variant(messages__0__reasons__0__content=_DROP), False),
    # pydantic's JSON parser stops at ~200 levels, the reader then re-parses with `json` (Python's limit)
    "nested 250 deep in an extra field": (_variant().replace(b'"domain"', b'"x": ' + b"[" * 250 + b"]" * 250 + b', "domain"'),
                                          True),
    "nested 5000 deep in an extra field": (
        _variant().replace(b'"domain"', b'"x": ' + b"[" * 5000 + b"]" * 5000 + b', "domain"'), False),
    "nested 150 deep in an extra field": (_variant().replace(b'"domain"', b'"x": ' + b"[" * 150 + b"]" * 150 + b', "domain"'),
                                          True),
    "trailing garbage": (_variant() + b" x", False),
    "a JSON array": (b"[1, 2]", False),
}


@pytest.mark.parametrize("name", list(EDGE))
def test_fast_path_never_accepts_what_pydantic_rejects(name: str) -> None:
    line, ok = EDGE[name]
    assert _pydantic_ok(line) is ok  # the case is what its name says
    if fast_parse(line) is not None:
        assert ok, f"the fast path accepted a line pydantic rejects: {name}"


def test_fast_path_takes_the_ordinary_lines_itself() -> None:
    """The speed comes from here: a release-2 line must not need pydantic (else the fast path is dead code)."""
    for name in ("good", "user_id wins", "empty thought lists on the wrong side are fine",
                 "nested 150 deep in an extra field"):
        assert fast_parse(EDGE[name][0]) is not None, name


def _figures(convs: Any) -> dict[str, Any]:
    return compute_stats(convs).model_dump()


def test_file_stats_errors_and_report_equal_the_pydantic_reader(tmp_path: Path) -> None:
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + b"\n\n".join(line for line, _ in EDGE.values()) + b"\n   \n")
    fast_report, slow_report = ReadReport(), ReadReport()
    fast = _figures(iter_validated(p, skip_invalid=True, report=fast_report))
    slow = _figures(iter_conversations(p, skip_invalid=True, report=slow_report))
    assert fast == slow and fast["conversations"] == sum(ok for _, ok in EDGE.values()) == 7
    assert [str(e) for e in fast_report.errors] == [str(e) for e in slow_report.errors]
    assert (fast_report.lines, fast_report.valid) == (slow_report.lines, slow_report.valid)
    assert [str(e) for e in validate_file(p).errors] == [str(e) for e in slow_report.errors]


def test_strict_stats_stop_at_the_first_bad_line_with_its_number(tmp_path: Path) -> None:
    from thoughttrace.data import DatasetError

    p = tmp_path / "bad.jsonl"
    p.write_bytes(_variant() + b"\n" + _variant(messages__1__type="system") + b"\n")
    with pytest.raises(DatasetError, match=r"line 2, field 'messages.1.type'"):
        stats_file(p)


def test_data_stats_builds_no_pydantic_model_for_a_good_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = Conversation.model_validate_json

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(Conversation, "model_validate_json", counting)
    p = tmp_path / "good.jsonl"
    p.write_bytes(b"\n".join(_variant(id=f"user{i}_c") for i in range(20)) + b"\n")
    st_, report = stats_file(p)
    assert st_.conversations == 20 and st_.users == 20 and report.valid == 20 and calls == []


# ---------------------------------------------------------------- generated lines, mutated at random

_text = st.text(alphabet="abc_ user", max_size=6)
_scalar = st.one_of(st.none(), _text, st.integers(-3, 3), st.booleans(), st.just([]), st.just({}))
_thought = st.fixed_dictionaries({"content": _text}, optional={"label": st.one_of(st.none(), _text),
                                                                "timestamp": st.one_of(st.none(), _text)})
_message = st.fixed_dictionaries(
    {"id": _text, "type": st.sampled_from(["user", "assistant"]), "content": _text},
    optional={"reasons": st.one_of(st.none(), st.lists(_thought, max_size=2)),
              "reactions": st.one_of(st.none(), st.lists(_thought, max_size=2))})
_conv = st.fixed_dictionaries(
    {"id": _text, "messages": st.lists(_message, max_size=4)},
    optional={"model_name": st.one_of(st.none(), _text), "domain": st.one_of(st.none(), _text),
              "user_id": st.one_of(st.none(), _text), "survey_answers": _scalar, "extra": _scalar})


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@given(_conv, st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_and_mutated_lines_get_pydantic_s_verdict_and_figures(conv: dict[str, Any], data: Any) -> None:
    paths = _paths(conv)
    if paths and data.draw(st.booleans()):  # mutate one field to any scalar (often a wrong type)
        path = data.draw(st.sampled_from(paths))
        node: Any = conv
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = data.draw(_scalar)
    line = json.dumps(conv).encode()
    fast = fast_parse(line)
    ok = _pydantic_ok(line)
    if fast is not None:
        assert ok, line
        assert _figures([fast]) == _figures([Conversation.model_validate_json(line)])
