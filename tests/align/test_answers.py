"""Question files (demo set and Arena-Hard shapes) and cached, resumable answers."""

from __future__ import annotations

import json

import pytest

from thoughttrace.align import AlignError, answer_with_model, load_answers, load_questions
from thoughttrace.llm import get_model


def test_demo_questions_ship_with_the_package():
    qs = load_questions("demo")
    assert len(qs) == 12 and len({q.question_id for q in qs}) == 12
    assert all(q.prompt.strip() for q in qs)
    assert len(load_questions(None, limit=3)) == 3


def test_arena_hard_shapes(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"question_id": 7, "category": "x", "turns": [{"content": "Why?"}]}) + "\n"
                 + json.dumps({"uid": "abc", "prompt": "How?"}) + "\n")
    qs = load_questions(f)
    assert [(q.question_id, q.prompt) for q in qs] == [("7", "Why?"), ("abc", "How?")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_id": "1"}) + "\n")
    with pytest.raises(AlignError, match="line 1"):
        load_questions(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text((json.dumps({"uid": "a", "prompt": "p"}) + "\n") * 2)
    with pytest.raises(AlignError, match="not unique"):
        load_questions(dup)


def test_answers_are_appended_and_resumed(tmp_path):
    qs = load_questions("demo", limit=4)
    model = get_model("scripted", cache=False, fn=lambda msgs, cfg: "answer to " + msgs[-1].content[:10])
    out = tmp_path / "answers.jsonl"
    first = answer_with_model(qs[:2], model, out, name="m", progress=False)
    assert len(first) == 2
    rows = answer_with_model(qs, model, out, name="m", progress=False)
    assert len(rows) == 4 and len(model.backend.requests) == 4  # the first two were not asked again
    assert {a.question_id for a in load_answers(out)} == {q.question_id for q in qs}
    assert all(a.answer.startswith("answer to") and a.generator == "scripted" for a in rows)
