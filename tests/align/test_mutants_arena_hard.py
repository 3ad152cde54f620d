"""arena-hard-auto import/export rules that scripts/mutate.py found unprotected (align/arena_hard.py).

Each test names one promise of the module: the Markdown counts written into an answer's metadata, a line read
from arena-hard-auto written back as it was read (a v0.1 line carried over keeping its values), a changed or new
answer written fresh, a null game kept as a null verdict, an unknown verdict refused, our own games exported
with their fields, and a category without judgments left out of the scores rather than scored on nothing.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.align import AlignError, index_answers
from thoughttrace.align.answers import Answer, Question
from thoughttrace.align.arena_hard import (
    answer_from_record,
    arena_metadata,
    category_baselines,
    read_answers,
    read_judgments,
    read_questions,
    score_by_category,
    skipped_categories,
    write_answers,
    write_judgments,
)
from thoughttrace.align.judge import Judgment

FOLDER = Path(__file__).parent / "fixtures" / "arena_hard_v2"
V2 = {"uid": "q1", "ans_id": "abc", "model": "m2", "tstamp": 1.5, "extra": "kept",
      "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": {"answer": "Two."}}],
      "metadata": {"token_len": 1}}
V01 = {"question_id": "q1", "answer_id": "old-7", "model_id": "m01", "tstamp": 1711397284.1, "note": "kept too",
       "choices": [{"index": 0, "turns": [{"content": "Old **bold** answer.", "token_len": 40}]}]}
QUESTIONS = [Question(question_id="q1", category="hard_prompt", prompt="Q?")]


def _written(tmp_path: Path, answers: list[Answer]) -> dict[str, dict[str, Any]]:
    paths = write_answers(answers, QUESTIONS, tmp_path)
    assert sorted(paths) == sorted(tmp_path / f"{a.model}.jsonl" for a in answers)
    return {p.stem: json.loads(p.read_text("utf-8")) for p in paths}


def test_bold_counts_in_the_metadata_count_each_spelling_once() -> None:
    md = arena_metadata("# Title\n\nSome **strong** and __under__ and __more__ words.\n- a\n1. b\n")
    assert md["bold_count"] == {"**": 1, "__": 2}
    assert md["header_count"]["h1"] == 1 and md["list_count"] == {"ordered": 1, "unordered": 1}


def test_a_folder_without_answer_files_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AlignError, match=r"no answer files \(\*\.jsonl\)"):
        read_answers(tmp_path)


def test_a_current_format_line_is_written_back_exactly_as_read(tmp_path: Path) -> None:
    a = answer_from_record(dict(V2), "w")
    assert _written(tmp_path, [a]) == {"m2": V2}


def test_an_old_format_line_is_carried_over_keeping_its_values(tmp_path: Path) -> None:
    a = answer_from_record(json.loads(json.dumps(V01)), "w")
    rec = _written(tmp_path, [a])["m01"]
    assert (rec["uid"], rec["ans_id"], rec["model"], rec["tstamp"], rec["note"]) == (
        "q1", "old-7", "m01", 1711397284.1, "kept too")
    assert rec["messages"][-1] == {"role": "assistant", "content": {"answer": "Old **bold** answer."}}
    assert rec["metadata"]["token_len"] == 40 and rec["metadata"]["bold_count"] == {"**": 1, "__": 0}
    assert not {"question_id", "answer_id", "model_id", "choices"} & set(rec)  # the old layout's keys are gone


def test_a_new_answer_gets_fresh_metadata_and_a_name_based_id(tmp_path: Path) -> None:
    new = Answer(question_id="q1", model="fresh", answer="A new **answer** here.", generator="fresh")
    rec = _written(tmp_path, [new])["fresh"]
    assert rec["ans_id"] == uuid.uuid5(uuid.NAMESPACE_URL, "fresh/q1").hex
    assert rec["messages"] == [{"role": "user", "content": "Q?"},
                               {"role": "assistant", "content": {"answer": "A new **answer** here."}}]
    assert rec["metadata"]["token_len"] == 4 and rec["metadata"]["bold_count"]["**"] == 1


def test_an_answer_changed_after_reading_is_written_with_its_new_text(tmp_path: Path) -> None:
    a = answer_from_record(dict(V2), "w").model_copy(update={"answer": "Changed."})
    rec = _written(tmp_path, [a])["m2"]
    assert rec["messages"][-1]["content"]["answer"] == "Changed." and rec["ans_id"] != "abc"


def _judgment_file(tmp_path: Path, games: list[Any]) -> Path:
    f = tmp_path / "cand.jsonl"
    f.write_text(json.dumps({"uid": "q1", "model": "cand", "baseline": "base", "games": games}) + "\n")
    return f


def test_a_null_game_is_read_as_no_verdict(tmp_path: Path) -> None:
    # arena-hard-auto writes null for a game whose judgment it could not parse, and drops it when scoring
    f = _judgment_file(tmp_path, [None, {"score": None}])
    assert [(j.game, j.verdict) for j in read_judgments(f)] == [(1, None), (2, None)]


def test_an_unknown_verdict_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(AlignError, match=r"games\[1\]: unknown verdict 'A>>>B'; expected one of \["):
        read_judgments(_judgment_file(tmp_path, [{"score": "A>B"}, {"score": "A>>>B"}]))


def _ours(game: int, a: str, b: str, verdict: str) -> Judgment:
    return Judgment(question_id="q1", game=game, model_a=a, model_b=b, judge="local:judge/x", verdict=verdict,
                    attempts=1, raw=f"[[{verdict}]]")


def test_games_judged_here_are_exported_as_one_line_with_both_games(tmp_path: Path) -> None:
    paths = write_judgments([_ours(1, "base", "cand", "B>A"), _ours(2, "cand", "base", "A>B")], QUESTIONS, tmp_path)
    assert paths == [tmp_path / "local_judge_x" / "cand.jsonl"]
    line = json.loads(paths[0].read_text("utf-8"))
    assert line == {"uid": "q1", "category": "hard_prompt", "judge": "local_judge_x", "model": "cand",
                    "baseline": "base", "games": [{"score": "B>A", "judgment": {"answer": "[[B>A]]"}, "prompt": None},
                                                  {"score": "A>B", "judgment": {"answer": "[[A>B]]"}, "prompt": None}]}


def test_a_judgment_line_read_from_arena_hard_keeps_its_own_fields(tmp_path: Path) -> None:
    src = tmp_path / "in" / "gpt-4.1"
    src.mkdir(parents=True)
    line = {"uid": "q1", "category": "hard_prompt", "judge": "gpt-4.1", "model": "cand", "baseline": "base",
            "extra": 3, "games": [{"score": "A<B", "judgment": {"answer": "x"}}, {"score": "A=B"}]}
    (src / "cand.jsonl").write_text(json.dumps(line) + "\n")
    paths = write_judgments(read_judgments(src), QUESTIONS, tmp_path / "out", judge_name="gpt-4.1")
    assert json.loads(paths[0].read_text("utf-8")) == line


def test_a_category_without_judgments_is_left_out_not_scored_on_nothing() -> None:
    qs = read_questions(FOLDER)
    base = category_baselines(qs)
    answers = index_answers(read_answers(FOLDER / "model_answer"))
    hard = {q.question_id for q in qs if q.category == "hard_prompt"}
    js = [j for j in read_judgments(FOLDER / "model_judgment" / "gpt-4.1")
          if j.question_id in hard and "old" not in j.model_a + j.model_b]
    out = score_by_category(js, answers, qs, base, samples=20)
    assert set(out) == {"hard_prompt"}
    assert skipped_categories(js, qs, base) == {
        "creative_writing": f"no judgment against its baseline {base['creative_writing']!r}"}
