"""arena-hard-auto interoperability on fixtures written in its published formats (tests/align/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.align import index_answers
from thoughttrace.align.arena import score_arena
from thoughttrace.align.arena_hard import (
    category_baselines,
    read_answers,
    read_judgments,
    read_questions,
    score_by_category,
    write_answers,
    write_judgments,
)
from thoughttrace.cli.main import cli

FOLDER = Path(__file__).parent / "fixtures" / "arena_hard_v2"


def test_questions_and_both_answer_formats_load() -> None:
    qs = read_questions(FOLDER)
    assert len(qs) == 12 and {q.category for q in qs} == {"hard_prompt", "creative_writing"}
    answers = index_answers(read_answers(FOLDER / "model_answer"))
    assert set(answers) == {"o3-mini-2025-01-31", "gemini-2.0-flash-001", "cand-model", "old-format-model"}
    cand = answers["cand-model"]["hp00"]
    assert cand.answer.startswith("## Answer by cand-model")
    # style control reads arena-hard-auto's metadata (token_len, header/list/bold counts summed)
    assert cand.style == {"length": 120.0, "headers": 0.0, "lists": 3.0, "bold": 1.0}
    old = answers["old-format-model"]["cw01"]
    assert old.answer == "Plain answer 7 from the old model." and old.style is not None and old.style["length"] == 47


def test_judgments_become_two_games_with_the_baseline_first() -> None:
    js = read_judgments(FOLDER / "model_judgment" / "gpt-4.1")
    assert len(js) == 2 * 24
    g1 = [j for j in js if j.question_id == "hp01" and j.model_b == "cand-model"][0]
    g2 = [j for j in js if j.question_id == "hp01" and j.model_a == "cand-model"][0]
    assert (g1.game, g1.model_a, g1.verdict) == (1, "o3-mini-2025-01-31", "B>>A")
    assert (g2.game, g2.model_b, g2.verdict) == (2, "o3-mini-2025-01-31", "A>>B")
    odd = [j for j in js if j.question_id == "cw05" and j.model_a == "cand-model"][0]
    assert odd.verdict == "B>A"  # arena-hard-auto's "A<B" spelling


def test_judgments_and_answers_round_trip_through_the_export(tmp_path: Path) -> None:
    qs = read_questions(FOLDER)
    js = read_judgments(FOLDER / "model_judgment" / "gpt-4.1")
    write_judgments(js, qs, tmp_path / "model_judgment", judge_name="gpt-4.1")
    back = read_judgments(tmp_path / "model_judgment" / "gpt-4.1")
    key = lambda j: (j.question_id, j.game, j.model_a, j.model_b, j.verdict)  # noqa: E731
    assert sorted(map(key, back)) == sorted(map(key, js))
    line = json.loads((tmp_path / "model_judgment" / "gpt-4.1" / "cand-model.jsonl").read_text().splitlines()[0])
    assert set(line) == {"uid", "category", "judge", "model", "baseline", "games"} and len(line["games"]) == 2
    answers = read_answers(FOLDER / "model_answer")
    write_answers(answers, qs, tmp_path / "model_answer")
    rec = json.loads((tmp_path / "model_answer" / "cand-model.jsonl").read_text().splitlines()[0])
    assert rec["messages"][-1]["content"]["answer"].startswith("## Answer")
    assert set(rec["metadata"]) == {"token_len", "header_count", "list_count", "bold_count"}
    again = {(a.model, a.question_id): a for a in read_answers(tmp_path / "model_answer")}
    for a in answers:
        b = again[(a.model, a.question_id)]
        assert b.answer == a.answer and b.style is not None and a.style is not None
        assert b.style["length"] == a.style["length"]


def test_each_category_is_scored_against_its_own_baseline() -> None:
    qs = read_questions(FOLDER)
    base = category_baselines(qs)
    assert base == {"creative_writing": "gemini-2.0-flash-001", "hard_prompt": "o3-mini-2025-01-31"}
    answers = index_answers(read_answers(FOLDER / "model_answer"))
    js = [j for j in read_judgments(FOLDER / "model_judgment" / "gpt-4.1") if "old" not in j.model_a + j.model_b]
    res = score_by_category(js, answers, qs, base, samples=50)
    # one candidate against one baseline: the BT win rate is the weighted share of the candidate's points
    # (independent arithmetic on the fixture's verdicts: strong verdicts weigh 3, ties half)
    cw = {r.model: r for r in res["creative_writing"].rows}["cand-model"]
    assert cw.win_rate == pytest.approx(100 * (2 + 0.5 * 2) / 16, abs=0.3)
    hp = {r.model: r for r in res["hard_prompt"].rows}["cand-model"]
    assert hp.win_rate == pytest.approx(100 * (11 + 0.5 * 3) / 16, abs=0.3)
    assert res["hard_prompt"].baseline == "o3-mini-2025-01-31"


def test_frozen_style_coefficients_keep_the_others_scores_when_a_model_is_added() -> None:
    answers = index_answers(read_answers(FOLDER / "model_answer"))
    qs = read_questions(FOLDER)
    cw = {q.question_id for q in qs if q.category == "creative_writing"}
    js = [j for j in read_judgments(FOLDER / "model_judgment" / "gpt-4.1") if j.question_id in cw]
    only = [j for j in js if "old" not in j.model_a + j.model_b]
    base = "gemini-2.0-flash-001"
    # 6 questions: too few for arena-hard-auto's row-bootstrap style fit (separation); the point-fit method
    # shows the freezing (tests/align/test_parity.py checks it under arena-hard-auto's method)
    first = score_arena(only, answers, base, samples=20, method="thoughttrace")
    refit = score_arena(js, answers, base, samples=20, method="thoughttrace")
    frozen = score_arena(js, answers, base, samples=20, frozen_style=first.style_coefficients, method="thoughttrace")
    sc = lambda r: {x.model: x for x in r.rows}["cand-model"].sc_win_rate  # noqa: E731
    assert sc(refit) != pytest.approx(sc(first), abs=0.05)  # refitting gamma moves cand-model's score ...
    assert sc(frozen) == pytest.approx(sc(first), abs=1e-6)  # ... frozen coefficients do not
    assert frozen.style_frozen and frozen.style_coefficients == pytest.approx(first.style_coefficients)


def test_cli_on_an_arena_hard_folder_prints_per_category_tables_and_exports(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["align", "arena", str(FOLDER), "--judgments-from", "gpt-4.1", "--out",
                                 str(tmp_path / "out"), "--samples", "20", "--export-arena-hard",
                                 str(tmp_path / "exp")])
    assert r.exit_code == 0, r.output
    assert "Category: hard_prompt (baseline `o3-mini-2025-01-31`)" in r.stdout
    assert "Category: creative_writing (baseline `gemini-2.0-flash-001`)" in r.stdout
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["categories"]) == {"hard_prompt", "creative_writing"}
    assert len(read_judgments(tmp_path / "exp" / "model_judgment" / "gpt-4.1")) == 48
    r2 = CliRunner().invoke(cli, ["align", "arena", str(FOLDER), "--judgments-from", "gpt-4.1", "--out",
                                  str(tmp_path / "out2"), "--samples", "20", "--freeze-style",
                                  str(tmp_path / "out" / "results.json")])
    assert r2.exit_code == 0 and "frozen" in r2.stdout
    bad = CliRunner().invoke(cli, ["align", "arena", str(FOLDER), "--judgments-from", "nobody", "--out",
                                   str(tmp_path / "o3")])
    assert bad.exit_code == 1 and "no such folder" in bad.stderr


# arena-hard-auto writes both spellings; "X<Y" reads "Y beats X" (written here by hand, not from the module)
SPELLINGS = {"A>>B": "A>>B", "A>B": "A>B", "A=B": "A=B", "B>A": "B>A", "B>>A": "B>>A",
             "A<B": "B>A", "A<<B": "B>>A", "B<A": "A>B", "B<<A": "A>>B", "B=A": "A=B"}


def test_every_verdict_spelling_is_read_the_right_way_round(tmp_path: Path) -> None:
    f = tmp_path / "cand-model.jsonl"
    f.write_text("".join(json.dumps({"uid": f"q{i}", "model": "cand-model", "baseline": "base",
                                     "games": [{"score": s}, {"score": "A=B"}]}) + "\n"
                         for i, s in enumerate(SPELLINGS)))
    js = read_judgments(f)
    got = {j.question_id: j.verdict for j in js if j.game == 1}
    assert got == {f"q{i}": want for i, want in enumerate(SPELLINGS.values())}
    g1 = [j for j in js if j.game == 1][0]
    assert (g1.model_a, g1.model_b) == ("base", "cand-model")  # game 1: the baseline is A


def test_a_category_is_scored_only_on_games_against_its_own_baseline(tmp_path: Path) -> None:
    qs = read_questions(FOLDER)
    base = category_baselines(qs)
    answers = index_answers(read_answers(FOLDER / "model_answer"))
    js = [j for j in read_judgments(FOLDER / "model_judgment" / "gpt-4.1") if "old" not in j.model_a + j.model_b]
    # games on hard_prompt questions against creative_writing's baseline, all lost by cand-model
    hp = sorted(q.question_id for q in qs if q.category == "hard_prompt")
    other = tmp_path / "cand-model.jsonl"
    other.write_text("".join(json.dumps({"uid": uid, "model": "cand-model", "baseline": base["creative_writing"],
                                         "games": [{"score": "A>>B"}, {"score": "B>>A"}]}) + "\n" for uid in hp))
    before = score_by_category(js, answers, qs, base, samples=50)
    after = score_by_category(js + read_judgments(other), answers, qs, base, samples=50)
    rows = {r.model: r for r in after["hard_prompt"].rows}
    assert set(rows) == {r.model for r in before["hard_prompt"].rows}
    assert base["creative_writing"] not in rows
    assert rows["cand-model"].win_rate == pytest.approx(100 * (11 + 0.5 * 3) / 16, abs=0.3)
    assert rows["cand-model"].win_rate == {r.model: r for r in before["hard_prompt"].rows}["cand-model"].win_rate


@pytest.mark.parametrize("rec", [
    {"uid": "q1", "messages": [{"role": "assistant", "content": {"answer": "text"}}]},  # no model
    {"uid": "q1", "model": "m", "messages": [{"role": "assistant", "content": {"answer": 7}}]},  # no text
])
def test_an_answer_line_without_its_model_or_its_text_is_refused(rec):
    from thoughttrace.align import AlignError
    from thoughttrace.align.arena_hard import answer_from_record

    with pytest.raises(AlignError, match="content.answer"):
        answer_from_record(rec, "answers.jsonl: line 1")


def test_a_judgment_with_one_game_is_refused(tmp_path):
    from thoughttrace.align import AlignError

    folder = tmp_path / "gpt-4.1"
    folder.mkdir()
    one_game = {"uid": "q1", "model": "m", "baseline": "b", "games": [{"score": "A>B", "judgment": {}}]}
    (folder / "m.jsonl").write_text(json.dumps(one_game) + "\n", encoding="utf-8")
    with pytest.raises(AlignError, match="expected two games"):
        read_judgments(folder)


def test_each_answer_format_needs_both_of_its_keys():
    """A v0.1 line that also carries a `uid` is read as v0.1; `question_id` + `choices` alone is not enough for
    a ThoughtTrace answer line."""
    from thoughttrace.align import AlignError
    from thoughttrace.align.arena_hard import answer_from_record

    old = {"uid": "x", "question_id": "q1", "model_id": "m", "choices": [{"turns": [{"content": "hi"}]}]}
    assert answer_from_record(old, "w").answer == "hi"
    with pytest.raises(AlignError, match="not an arena-hard-auto answer"):
        answer_from_record({"question_id": "q1", "model": "m"}, "w")


@pytest.mark.parametrize(("rec", "says"), [
    ({"uid": "q1", "model": "m", "messages": []}, "content.answer"),
    ({"question_id": "q1", "model_id": "m", "choices": []}, "choices\\[0\\].turns\\[0\\].content"),
    ({"question_id": "q1", "model_id": "m", "choices": [{"turns": [{"content": 3}]}]}, "model_id"),
    ({"question_id": "q1", "choices": [{"turns": [{"content": "hi"}]}]}, "model_id"),
])
def test_a_malformed_answer_line_is_one_clear_error(rec, says):
    from thoughttrace.align import AlignError
    from thoughttrace.align.arena_hard import answer_from_record

    with pytest.raises(AlignError, match=says):
        answer_from_record(rec, "answers.jsonl: line 3")


def test_our_own_answer_lines_are_read_too():
    from thoughttrace.align.arena_hard import answer_from_record

    ours = {"question_id": "q1", "model": "cand", "answer": "An answer.", "generator": "cand"}
    got = answer_from_record(ours, "w")
    assert (got.question_id, got.model, got.answer) == ("q1", "cand", "An answer.")
