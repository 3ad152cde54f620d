"""`tom bench` and `tom solve`: outputs, resumption, failures counted wrong, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.llm import get_model
from thoughttrace.tom.harness import read_results, run_bench, summarise, wilson
from thoughttrace.tom.items import ToMItem, write_items

from .scripted import CHOICES, STORY


def test_wilson_interval() -> None:
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) == (0.0, 0.0)


def _items(tmp_path: Path) -> Path:
    items = [ToMItem(id=f"t-{i}", benchmark="tomi", story=STORY, question="Where does Sally think the ball is?",
                     choices=CHOICES, answer="A", question_type="first_order_0_tom" if i % 2 else "reality",
                     split="dev") for i in range(4)]
    path = tmp_path / "items.jsonl"
    write_items(items, path)
    return path


def test_bench_writes_results_summary_and_resumes(tmp_path: Path) -> None:
    path, out = _items(tmp_path), tmp_path / "out"
    args = ["tom", "bench", str(path), "--method", "direct", "--out", str(out), "-m", "scripted", "--no-cache"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["format_version"] == 1 for r in rows)
    assert {"answer", "posterior", "correct", "calls", "tokens", "seconds", "error"} <= set(rows[0])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["n"] == 4 and summary["format_version"] == 1
    assert set(summary["benchmarks"]["tomi"]["by_official_group"]) == {"first_order", "reality"}
    md = (out / "summary.md").read_text()
    assert "accuracy" in md and "Brier" in md and "stopped on budget" in md
    assert set(summary["overall"]["calibration"]) >= {"brier", "ece", "log_loss", "n", "excluded"}
    # resumed: nothing is asked again
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0
    usage = json.loads((out / "usage.json").read_text())
    assert usage["models"]["scripted"]["calls"] == 0
    assert len(read_results(out / "results.jsonl")) == 4


async def test_a_failing_item_is_recorded_counted_wrong_and_the_run_goes_on(tmp_path: Path) -> None:
    from thoughttrace.tom.items import read_items
    from thoughttrace.tom.methods import Direct

    class Flaky(Direct):
        name = "direct"

        async def solve(self, model, story, question, choices):  # type: ignore[override]
            if question.endswith("?") and len(self.seen) % 2 == 0:
                self.seen.append(1)
                raise TypeError("a bug")
            self.seen.append(1)
            return await super().solve(model, story, question, choices)

    method = Flaky()
    method.seen = []  # type: ignore[attr-defined]
    model = get_model("scripted", cache=False, logprobs={"A": 0.9, "B": 0.1})
    summary = await run_bench(read_items(_items(tmp_path)), method, model, tmp_path / "o", progress=False,
                              concurrency=2)
    assert summary["overall"]["n"] == 4 and summary["overall"]["failures"] == 2
    assert all("TypeError" in e["error"] for e in summary["errors"])
    assert summary["overall"]["correct"] == 0  # the bias cancels in both orders: ties, never counted right


def test_summary_groups_per_type() -> None:
    from thoughttrace.tom.harness import ItemResult

    rows = [ItemResult(id=str(i), benchmark="hitom", question_type=f"order{i % 2}_tell", official_group=f"order{i % 2}",
                       method="m", model="x", answer="A", answer_index=0, gold="A", correct=i < 3, tie=False,
                       posterior=[1.0], calls=2, cache_hits=0, tokens=10, seconds=1.0) for i in range(4)]
    s = summarise(rows)
    assert s["benchmarks"]["hitom"]["by_official_group"]["order0"]["accuracy"] == 1.0
    assert s["benchmarks"]["hitom"]["by_official_group"]["order1"]["accuracy"] == 0.5
    assert s["per_question"]["calls"] == 2.0


def test_solve_json_and_explain() -> None:
    base = ["tom", "solve", "--story", STORY, "--question", "Where does Sally think the ball is?",
            "--choice", "basket", "--choice", "box", "-m", "scripted", "--no-cache"]
    res = CliRunner().invoke(cli, [*base, "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["posterior"] == pytest.approx([0.5, 0.5]) and payload["method"] == "autotom"
    assert payload["format_version"] == 1 and "trace" in payload and "usage" in payload
    res = CliRunner().invoke(cli, [*base, "--explain", "--method", "autotom"])
    assert res.exit_code == 0 and "posterior:" in res.stdout and "timeline" in res.stdout


def test_bad_inputs_give_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    res = CliRunner().invoke(cli, ["tom", "bench", str(bad), "--out", str(tmp_path / "o"), "-m", "scripted"])
    assert res.exit_code == 1 and "bad.jsonl: line 1" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["tom", "solve", "--story", "s", "--question", "q", "--choice", "a", "-m", "scripted"])
    assert res.exit_code == 1 and "at least two" in res.output
    res = CliRunner().invoke(cli, ["tom", "solve", "--story", "s", "--question", "q", "--choice", "a", "--choice", "b",
                                   "--method", "direct", "--k", "2", "-m", "scripted"])
    assert res.exit_code == 1 and "--k, --budget and --(no-)belief-of-state" in res.output


def _row(i: int, gold: str, posterior: list[float], *, correct: bool, tie: bool = False, least: bool = False,
         stopped: str | None = None, lik: int | None = None):
    from thoughttrace.tom.harness import ItemResult

    p_gold = None if "," in gold else posterior[ord(gold) - 65]
    return ItemResult(id=str(i), benchmark="b", question_type="t", official_group=None, method="m", model="x",
                      answer="A", answer_index=0, gold=gold, correct=correct, tie=tie, posterior=posterior, calls=1,
                      cache_hits=0, tokens=1, seconds=1.0, p_gold=p_gold, least_likely=least,
                      multi_label="," in gold, stopped_because=stopped, likelihood_requests=lik)


def test_calibration_figures_match_a_hand_computation() -> None:
    import math

    from thoughttrace.tom.harness import calibration

    rows = [_row(0, "A", [0.8, 0.2], correct=True), _row(1, "B", [0.7, 0.3], correct=False),
            _row(2, "A", [0.5, 0.5], correct=False, tie=True),
            _row(3, "B", [0.9, 0.1], correct=True, least=True),  # least-likely: not a forecast, left out
            _row(4, "A,B", [0.5, 0.5], correct=True)]  # multi-label: left out
    c = calibration(rows)
    assert c["n"] == 3 and c["excluded"] == 2
    assert c["brier"] == pytest.approx((0.08 + 0.98 + 0.5) / 3)
    assert c["log_loss"] == pytest.approx((-math.log(0.8) - math.log(0.3) - math.log(0.5)) / 3)
    # bins: 0.8 (right) alone, 0.7 (wrong) alone, 0.5 (wrong) alone -> |0.8-1| + |0.7-0| + |0.5-0|, / 3
    assert c["ece"] == pytest.approx((0.2 + 0.7 + 0.5) / 3)
    assert calibration([rows[3]])["brier"] is None and "reason" in calibration([rows[3]])


def test_summary_reports_ties_budget_stops_and_median_requests() -> None:
    rows = [_row(0, "A", [0.8, 0.2], correct=True, stopped="budget", lik=30),
            _row(1, "A", [0.5, 0.5], correct=False, tie=True, stopped="threshold", lik=4),
            _row(2, "A", [0.6, 0.4], correct=True, stopped="gain-below-alpha", lik=8)]
    o = summarise(rows)["overall"]
    assert o["stopped_on_budget"]["k"] == 1 and o["stopped_on_budget"]["n"] == 3
    assert o["tie_share"]["share"] == pytest.approx(1 / 3) and o["likelihood_requests_median"] == 8
    lo, hi = o["ci95"]
    assert 0.0 <= lo < 2 / 3 < hi <= 1.0
    assert summarise([_row(0, "A", [1.0, 0.0], correct=True)])["overall"]["stopped_on_budget"] is None


def test_multi_label_items_are_read_and_scored_by_exact_set_match(tmp_path: Path) -> None:
    from thoughttrace.tom.harness import predicted_set
    from thoughttrace.tom.items import read_items

    item = ToMItem(id="m", benchmark="extra", story=STORY, question="Which are true?", choices=["a", "b", "c"],
                   answer="C,A")
    assert item.answer == "A,C" and item.answer_indices == [0, 2] and item.multi_label
    path = tmp_path / "multi.jsonl"
    write_items([item], path)
    assert read_items(path)[0].answer_indices == [0, 2]
    with pytest.raises(ValueError, match="repeats"):
        ToMItem(id="m", benchmark="x", story="s", question="q", choices=["a", "b"], answer="A,A")
    assert predicted_set([0.45, 0.1, 0.45], [0, 2], multi_label=True) == [0, 2]
    assert predicted_set([0.6, 0.1, 0.3], [0], multi_label=True) == [0]
    assert predicted_set([0.5, 0.5], [0, 1], multi_label=False) == []


async def test_harness_scores_a_multi_label_item(tmp_path: Path) -> None:
    from thoughttrace.tom.harness import run_item
    from thoughttrace.tom.methods import Direct

    def lp(messages):  # content preference for "a" and "c", whatever their position
        text = messages[-1].content
        order = [line[3:] for line in text.splitlines() if len(line) > 3 and line[1:3] == ". "]
        return {chr(65 + i): (0.45 if c in ("a", "c") else 0.1) for i, c in enumerate(order)}

    model = get_model("scripted", cache=False, logprobs=lp)
    right = ToMItem(id="m1", benchmark="extra", story=STORY, question="Which?", choices=["a", "b", "c"], answer="A,C")
    wrong = right.model_copy(update={"id": "m2", "answer": "A"})
    r1 = await run_item(Direct(), model, right)
    r2 = await run_item(Direct(), model, wrong)
    r3 = await run_item(Direct(), model, right.model_copy(update={"id": "m3", "answer": "A,B"}))
    assert r1.correct and r1.predicted == ["A", "C"] and r1.p_gold is None
    assert not r2.correct  # a tie of A and C is not the single answer A
    assert not r3.correct  # {A, C} is not {A, B}: the whole set must match


def test_solve_belief_of_state_flag() -> None:
    base = ["tom", "solve", "--story", STORY, "--question", "Where does Anne think that Sally thinks the ball is?",
            "--choice", "basket", "--choice", "box", "-m", "scripted", "--no-cache", "--json"]
    on = CliRunner().invoke(cli, base)
    off = CliRunner().invoke(cli, [*base, "--no-belief-of-state"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    assert json.loads(on.stdout)["trace"]["belief_of_state"]["outer"] == "Anne"
    assert "belief_of_state" not in json.loads(off.stdout)["trace"]
    res = CliRunner().invoke(cli, [*base, "--method", "direct", "--no-belief-of-state"])
    assert res.exit_code == 1 and "apply to --method autotom only" in res.output
