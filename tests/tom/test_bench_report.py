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
