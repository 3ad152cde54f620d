"""Property tests: the reader and the importers either return conversations or report errors, never crash."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thoughttrace.data import Conversation, ReadReport, iter_conversations, validate_file, write_conversations
from thoughttrace.data.exporters import from_row, to_row
from thoughttrace.data.importers import IMPORTERS, iter_import

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=3) |
                           st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)
extra_fields = st.dictionaries(st.text(min_size=1, max_size=8).map(lambda s: "x_" + s), json_values, max_size=2)
opt_text = st.none() | st.text(max_size=30)


@st.composite
def thoughts(draw: Any) -> dict[str, Any]:
    return {"content": draw(st.text(max_size=40)), "timestamp": draw(opt_text), "label": draw(opt_text),
            **draw(extra_fields)}


@st.composite
def messages(draw: Any, index: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["user", "assistant"]))
    msg: dict[str, Any] = {"id": f"m{index}", "timestamp": draw(opt_text), "type": kind,
                           "content": draw(st.text(max_size=80)), **draw(extra_fields)}
    key = "reasons" if kind == "user" else "reactions"
    msg[key] = draw(st.none() | st.lists(thoughts(), max_size=2))
    return msg


@st.composite
def conversations(draw: Any) -> Conversation:
    n = draw(st.integers(0, 5))
    data = {"id": draw(st.text(min_size=1, max_size=30)), "model_name": draw(opt_text),
            "survey_answers": draw(st.none() | st.lists(json_values, max_size=3)),
            "domain": draw(opt_text), "user_id": draw(opt_text),
            "messages": [draw(messages(i)) for i in range(n)], **draw(extra_fields)}
    return Conversation.model_validate(data)


@SETTINGS
@given(st.lists(conversations(), max_size=5))
def test_write_read_round_trip_is_identity(convs: list[Conversation]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        assert write_conversations(convs, path) == len(convs)
        assert list(iter_conversations(path)) == convs
        for conv in convs:
            assert from_row(to_row(conv)) == conv


garbage_line = (
    st.text(max_size=200).map(lambda s: s.replace("\n", " ").replace("\r", " "))
    | json_values.map(json.dumps)
    | st.binary(max_size=100).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ").decode("latin-1"))
)


@st.composite
def damaged_lines(draw: Any) -> str:
    """A valid line cut short, or with a field replaced by an arbitrary JSON value."""
    conv = draw(conversations()).to_json_dict()
    if draw(st.booleans()):
        text = json.dumps(conv)
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    key = draw(st.sampled_from(sorted(conv)))
    conv[key] = draw(json_values)
    return json.dumps(conv)


@SETTINGS
@given(st.lists(garbage_line | damaged_lines(), min_size=1, max_size=8))
def test_garbage_lines_are_reported_never_raised(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass"))
        report = validate_file(path)
        nonblank = {i + 1 for i, line in enumerate(lines) if line.encode("utf-8", "surrogatepass").strip()}
        bad_lines = {e.line for e in report.errors}
        assert report.lines == len(nonblank)
        assert report.valid + len(bad_lines) == report.lines
        assert bad_lines <= nonblank
        for e in report.errors:
            assert e.message
        # the good lines are exactly those a strict parse of the line alone accepts
        for i in nonblank - bad_lines:
            Conversation.model_validate(json.loads(lines[i - 1]))


@SETTINGS
@given(st.sampled_from(sorted(IMPORTERS)), st.lists(json_values | garbage_line.map(lambda s: ("raw", s)),
                                                    min_size=1, max_size=6))
def test_importers_report_bad_records_never_raise(source: str, records: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.jsonl"
        text = "".join((r[1] if isinstance(r, tuple) else json.dumps(r)) + "\n" for r in records)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        report = ReadReport()
        convs = list(iter_import(source, path, skip_invalid=True, report=report))
        assert len(convs) == report.valid
        assert report.valid + len({e.line for e in report.errors}) == report.lines


turn_text = st.text(max_size=50)


@SETTINGS
@given(st.lists(st.tuples(turn_text, turn_text), min_size=1, max_size=6), st.text(min_size=1, max_size=20))
def test_importers_keep_every_turn_in_order(pairs: list[tuple[str, str]], conv_id: str) -> None:
    flat = [t for pair in pairs for t in pair]
    records = {
        "sharegpt": {"id": conv_id, "conversations": [{"from": r, "value": t} for pair in pairs
                                                       for r, t in zip(("human", "gpt"), pair)]},
        "openai": {"id": conv_id, "messages": [{"role": r, "content": t} for pair in pairs
                                               for r, t in zip(("user", "assistant"), pair)]},
        "lmsys": {"conversation_id": conv_id, "model": "vicuna-13b",
                  "conversation": [{"role": r, "content": t} for pair in pairs for r, t in zip(("user", "assistant"), pair)]},
        "wildchat": {"conversation_hash": conv_id, "model": "gpt-4", "timestamp": "2024-01-01T00:00:00Z",
                     "conversation": [{"role": r, "content": t} for pair in pairs
                                      for r, t in zip(("user", "assistant"), pair)]},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for source, record in records.items():
            path = Path(tmp) / f"{source}.jsonl"
            path.write_text(json.dumps(record) + "\n", encoding="utf-8")
            (conv,) = list(iter_import(source, path))
            assert conv.id == conv_id
            assert [m.content for m in conv.messages] == flat
            assert [m.type for m in conv.messages] == ["user", "assistant"] * len(pairs)
