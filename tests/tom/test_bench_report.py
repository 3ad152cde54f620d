"""bench/tom_dev.py's comparison: each method's accuracy minus the first one's on the same items, with a CI."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tom_dev.py"


@pytest.fixture(scope="module")
def tom_dev():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("tom_dev_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rows(correct: dict[str, bool]) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=i, correct=c) for i, c in correct.items()]


def test_the_difference_is_paired_on_the_items_both_methods_did(tom_dev) -> None:  # type: ignore[no-untyped-def]
    base = rows({f"q{i}": i < 2 for i in range(10)})  # 2 of 10 right
    other = rows({f"q{i}": i < 6 for i in range(8)})  # 6 of the same first 8 right; q8, q9 not done yet
    diffs = tom_dev.differences({"autotom": base, "direct": other}, "autotom")
    d = diffs["direct"]
    assert d["n"] == 8 and d["mean"] == pytest.approx(4 / 8)  # 6/8 - 2/8 on the 8 shared items, not 6/8 - 2/10
    assert -1.0 <= d["low"] <= d["mean"] <= d["high"] <= 1.0
    lines = tom_dev.difference_lines(diffs, "autotom")
    assert lines[-1].startswith("| direct | +50 [") and lines[-1].endswith("| 8 |")


def test_no_shared_item_is_an_explicit_null(tom_dev) -> None:  # type: ignore[no-untyped-def]
    diffs = tom_dev.differences({"autotom": rows({"a": True}), "simtom": rows({"b": False})}, "autotom")
    assert diffs["simtom"]["mean"] is None and diffs["simtom"]["reason"]
    assert "n/a (" in tom_dev.difference_lines(diffs, "autotom")[-1]


def results(spec: dict[str, tuple[bool, int, str]]) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=i, correct=c, likelihood_requests=n, stopped_because=why, tokens=100 * n)
            for i, (c, n, why) in spec.items()]


def test_against_an_earlier_run_pairs_the_items_both_runs_did(tom_dev) -> None:  # type: ignore[no-untyped-def]
    before = results({"a": (False, 40, "budget"), "b": (True, 20, "threshold"), "c": (False, 30, "budget"),
                      "gone": (True, 2, "threshold")})
    now = results({"a": (True, 10, "threshold"), "b": (True, 12, "threshold"), "c": (False, 30, "budget"),
                   "new": (False, 99, "budget")})
    c = tom_dev.against(now, before)
    assert c["n"] == 3  # "gone" and "new" are in one run only
    assert c["before"]["correct"] == 1 and c["now"]["correct"] == 2
    assert c["before"]["stopped_on_budget"] == 2 and c["now"]["stopped_on_budget"] == 1
    assert c["before"]["likelihood_requests_median"] == 30 and c["now"]["likelihood_requests_median"] == 12
    assert c["accuracy"]["mean"] == pytest.approx(1 / 3)
    assert c["likelihood_requests"]["mean"] == pytest.approx(((10 - 40) + (12 - 20) + 0) / 3)
    assert c["likelihood_requests"]["low"] <= c["likelihood_requests"]["mean"] <= c["likelihood_requests"]["high"]
    line = tom_dev.against_lines({"autotom": c}, Path("old"))[-1]
    assert line.startswith("| autotom | 3 | 1 -> 2 | +33 [") and "| 30.0 -> 12.0 | 2 -> 1 |" in line


def test_against_says_why_a_method_has_no_request_difference(tom_dev) -> None:  # type: ignore[no-untyped-def]
    rows = [SimpleNamespace(id="a", correct=True, likelihood_requests=None, stopped_because=None, tokens=5)]
    c = tom_dev.against(rows, rows)
    assert c["n"] == 1 and c["accuracy"]["mean"] == 0.0
    assert c["likelihood_requests"]["mean"] is None and "only autotom" in c["likelihood_requests"]["reason"]
