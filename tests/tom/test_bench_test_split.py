"""bench/tom_dev.py's test protocol (`--split test`), oracle cap (`--oracle`) and rule ablation (`--ablate`), run on
the scripted model (no real model: a real run is an hour)."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from thoughttrace.llm import get_model
from thoughttrace.tom.benchmarks import BENCHMARKS, load_uniform
from thoughttrace.tom.items import sample_stratified

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "tom_dev.py"
SAMPLE = REPO / "bench" / "tom_test_sample.json"


@pytest.fixture(scope="module")
def tom_dev():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("tom_dev_bench_split", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_test_sample_is_fixed_stratified_and_documented(tom_dir: Path) -> None:
    """20 test items per benchmark, every question type covered evenly, the same ids whatever the file order, and
    exactly the ids committed in bench/tom_test_sample.json."""
    committed = json.loads(SAMPLE.read_text())
    assert committed["per_benchmark"] == 20 and committed["seed"] == 28
    for bench in BENCHMARKS:
        items = load_uniform(tom_dir, bench)
        got = sample_stratified(items)
        assert len(got) == 20 and all(it.split == "test" for it in got)
        counts = Counter(it.question_type for it in got)
        assert set(counts) == {it.question_type for it in items} and max(counts.values()) - min(counts.values()) <= 1
        assert [it.id for it in sample_stratified(list(reversed(items)))] == [it.id for it in got]
        assert [it.id for it in got] == committed["ids"][bench], bench
        assert [it.id for it in sample_stratified(items, seed=29)] != [it.id for it in got]


def _scripted(calls: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    def make(spec: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        calls.append({"spec": spec, **kwargs})
        return get_model("scripted", cache=False, logprobs={"A": 0.6, "B": 0.3, "Likely": 0.6, "Unlikely": 0.4})
    return make


def test_split_test_runs_autotom_and_direct_on_the_same_items(tom_dev, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(tom_dev, "get_model", _scripted(calls))
    out = tmp_path / "run"
    assert tom_dev.main(["--split", "test", "--per-benchmark", "2", "--benchmarks", "tomi,bigtom", "--model",
                         "local:qwen1.5b", "--reproducible", "--budget", "8", "--out", str(out)]) == 0
    assert calls == [{"spec": "local:qwen1.5b", "reproducible": True}]  # no prompt-cache reuse for local models
    payload = json.loads((out / "tom_dev.json").read_text())
    assert payload["format_version"] == 5 and payload["split"] == "test" and payload["reproducible"] is True
    protocol = payload["test_protocol"]
    assert set(protocol) == {"tomi", "bigtom", "all"}
    for bench in ("tomi", "bigtom"):
        entry = protocol[bench]
        assert set(entry["methods"]) == {"autotom", "direct"}
        assert entry["methods"]["autotom"]["accuracy"]["n"] == entry["methods"]["direct"]["accuracy"]["n"] == 2
        assert entry["difference"]["of"] == "autotom - direct" and entry["difference"]["n"] == 2
        assert {"brier", "ece"} <= set(entry["methods"]["direct"]["calibration"])
        assert entry["methods"]["autotom"]["requests_per_q"] >= 0
    sample = json.loads((out / "sample.json").read_text())
    assert sample["ids"]["tomi"] == json.loads(SAMPLE.read_text())["ids"]["tomi"][:2]
    text = (out / "tom_dev.md").read_text()
    assert "Test protocol: autotom vs direct" in text and "| all | 4 |" in text


def test_oracle_mode_reports_the_cap_without_a_model(tom_dev, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tom_dev, "get_model", lambda *a, **k: pytest.fail("the oracle mode calls no model"))
    assert tom_dev.main(["--oracle", "--limit", "2", "--out", str(tmp_path)]) == 0
    cap = json.loads((tmp_path / "oracle.json").read_text())
    assert cap["overall"] == {"k": 10, "n": 10} and cap["split"] == "dev" and len(cap["rows"]) == 10
    assert "Oracle cap (dev items, perception none" in (tmp_path / "oracle.md").read_text()


def test_ablate_turns_one_rule_off_and_an_unknown_rule_is_one_clear_line(tom_dev, capsys) -> None:  # type: ignore[no-untyped-def]
    args = SimpleNamespace(budget=None, rows=False, ablate=["co_location"])
    rules = tom_dev.autotom_options(args)["rules"]
    assert "co_location" not in rules and "private_audience" in rules
    with pytest.raises(SystemExit) as exc:
        tom_dev.main(["--ablate", "no_such_rule", "--oracle"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown rule(s) no_such_rule; known rules:" in err and "co_location" in err


def test_rows_replayed_from_the_cache_are_marked(tom_dev) -> None:  # type: ignore[no-untyped-def]
    assert tom_dev.replayed(SimpleNamespace(calls=4, cache_hits=4))
    assert not tom_dev.replayed(SimpleNamespace(calls=4, cache_hits=3))
    assert not tom_dev.replayed(SimpleNamespace(calls=0, cache_hits=0))
