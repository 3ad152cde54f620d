"""The arena end to end with scripted judges: both orders, resume, win rates and the table."""

from __future__ import annotations

import json

import pytest

from thoughttrace.align import (
    AlignError,
    Answer,
    arun_games,
    index_answers,
    load_questions,
    results_markdown,
    score_arena,
)
from thoughttrace.llm import get_model


def _answers(qs, good_marker: str = "GOOD"):
    rows = []
    for q in qs:
        rows.append(Answer(question_id=q.question_id, model="base", answer=f"Short reply to {q.question_id}.",
                           generator="base"))
        rows.append(Answer(question_id=q.question_id, model="cand",
                           answer=f"{good_marker} reply to {q.question_id}.", generator="cand"))
    return index_answers(rows)


def _prefers_marker(msgs, cfg):
    user = msgs[1]["content"] if isinstance(msgs[1], dict) else msgs[1].content
    a_part = user.split("<|The Start of Assistant B's Answer|>")[0]
    return "My answer: ...\n[[A>>B]]" if "GOOD" in a_part else "My answer: ...\n[[B>A]]"


def test_candidate_that_the_judge_prefers_wins(tmp_path):
    qs = load_questions("demo")
    judge = get_model("scripted", cache=False, fn=_prefers_marker)
    answers = _answers(qs)
    out = tmp_path / "judgments.jsonl"
    judgments = judge.run(arun_games(qs, answers, "base", judge, out=out, progress=False))
    assert len(judgments) == 2 * len(qs)
    games = {(j.question_id, j.game): (j.model_a, j.model_b) for j in judgments}
    assert games[(qs[0].question_id, 1)] == ("base", "cand") and games[(qs[0].question_id, 2)] == ("cand", "base")
    result = score_arena(judgments, answers, "base", samples=50)
    cand = next(r for r in result.rows if r.model == "cand")
    assert cand.win_rate is not None and cand.win_rate > 90
    assert cand.wins == 12 * 1 + 12 * 3 and cand.losses == 0 and cand.games == 24
    table = results_markdown(result)
    assert "| cand |" in table and "| base | 50.0" in table
    # resume: a second run reads the judgments file and calls the judge no more
    n_calls = len(judge.backend.requests)
    again = judge.run(arun_games(qs, answers, "base", judge, out=out, progress=False))
    assert len(judge.backend.requests) == n_calls and len(again) == len(judgments)
    assert all(json.loads(line)["format_version"] == 1 for line in out.read_text().splitlines())
    # a changed answer is judged again (its two games), the rest still come from the file
    answers["cand"][qs[0].question_id] = answers["cand"][qs[0].question_id].model_copy(update={"answer": "GOOD new"})
    judge.run(arun_games(qs, answers, "base", judge, out=out, progress=False))
    assert len(judge.backend.requests) == n_calls + 2


def test_position_bias_cancels_out():
    qs = load_questions("demo")
    judge = get_model("scripted", cache=False, outputs=["[[A>B]]"])  # always prefers the first answer
    answers = _answers(qs)
    judgments = judge.run(arun_games(qs, answers, "base", judge, progress=False))
    # the point fit (thoughttrace) is exactly 50; arena-hard-auto's score is a mean over resamples, 50 inside its CI
    cand = next(r for r in score_arena(judgments, answers, "base", samples=30, method="thoughttrace").rows
                if r.model == "cand")
    assert cand.win_rate is not None and abs(cand.win_rate - 50) < 1e-6
    assert cand.win_rate_ci[0] <= 50 <= cand.win_rate_ci[1]
    ah = next(r for r in score_arena(judgments, answers, "base", samples=30).rows if r.model == "cand")
    assert ah.win_rate_ci is not None and ah.win_rate_ci[0] <= 50 <= ah.win_rate_ci[1]


def test_unparsed_games_are_counted_not_scored():
    qs = load_questions("demo", limit=3)
    judge = get_model("scripted", cache=False, outputs=["no verdict at all"])
    answers = _answers(qs)
    judgments = judge.run(arun_games(qs, answers, "base", judge, retries=0, progress=False))
    result = score_arena(judgments, answers, "base", samples=10)
    cand = next(r for r in result.rows if r.model == "cand")
    assert cand.unparsed == 6 and cand.games == 0 and cand.win_rate is None
    assert "n/a" in results_markdown(result)


def test_missing_baseline_is_a_clear_error():
    qs = load_questions("demo", limit=2)
    judge = get_model("scripted", cache=False, outputs=["[[A=B]]"])
    with pytest.raises(AlignError, match="no answers from the baseline"):
        judge.run(arun_games(qs, _answers(qs), "gpt-4", judge, progress=False))


def _verdict_by_question(msgs, cfg):
    """cand wins "q-win", loses "q-lose" and ties the rest, whatever the order the games show them in."""
    user = msgs[1]["content"] if isinstance(msgs[1], dict) else msgs[1].content
    a_part = user.split("<|The Start of Assistant B's Answer|>")[0]
    cand_is_a = "GOOD" in a_part
    if "q-win" in user:
        return "[[A>B]]" if cand_is_a else "[[B>A]]"
    if "q-lose" in user:
        return "[[B>A]]" if cand_is_a else "[[A>B]]"
    return "[[A=B]]"


def test_wins_ties_and_losses_are_counted_apart():
    qs = load_questions("demo")[:4]
    ids = ["q-win", "q-lose", "q-lose", "q-tie"]
    answers = index_answers([
        Answer(question_id=q.question_id, model=m, answer=f"{'GOOD' if m == 'cand' else 'Short'} {tag}", generator=m)
        for q, tag in zip(qs, ids) for m in ("base", "cand")])
    judge = get_model("scripted", cache=False, fn=_verdict_by_question)
    judgments = judge.run(arun_games(qs, answers, "base", judge, out=None, progress=False))
    cand = next(r for r in score_arena(judgments, answers, "base", samples=20).rows if r.model == "cand")
    assert (cand.wins, cand.ties, cand.losses, cand.games) == (2, 2, 4, 8)
