"""`--engine ray` on every batch job but label (tested in test_label_ray_cli.py): one local Ray for the module.

Each job runs on the local engine and on Ray (2 workers, small shards) over the same input with a
deterministic scripted model (tests/scale/scripted_roles.py), the outputs and summary files must be equal,
and a Ray rerun must skip every finished shard with zero model calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thoughttrace.batch import ModelRecipe
from thoughttrace.cli.main import cli
from thoughttrace.data import write_synthetic
from thoughttrace.llm import get_model

from . import scripted_roles

ray = pytest.importorskip("ray")

#: fields that differ between any two runs (wall clock, timestamps, usage of that run)
VOLATILE = {"created", "usage", "usage_this_run", "seconds", "wall_seconds"}


@pytest.fixture(scope="module", autouse=True)
def _scripted_by_value(ray_session):
    """The session's Ray (conftest.py) ships this test module's scripted roles by value to its workers."""
    ray.cloudpickle.register_pickle_by_value(scripted_roles)
    yield


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every model string of every batch command is the deterministic scripted model, on both engines."""
    from thoughttrace.cli import align as align_cli
    from thoughttrace.cli import evals as evals_cli
    from thoughttrace.cli import tom as tom_cli

    built: list[Any] = []

    def build(spec: str, base_url: Any, cache_path: Any, no_cache: bool, offline: bool, **kw: Any) -> Any:
        cache: Any = False if no_cache else (Path(cache_path) if cache_path else True)
        m = get_model(f"scripted:{spec}", cache=cache, offline=offline, fn=scripted_roles.answer)
        built.append(m)
        return m

    def recipe(spec: str, base_url: Any, cache_path: Any, no_cache: bool, offline: bool, **kw: Any) -> ModelRecipe:
        cache = None if no_cache else (str(Path(cache_path).resolve()) if cache_path else "default")
        return ModelRecipe(f"scripted:{spec}", cache=cache, offline=offline, kwargs={"fn": scripted_roles.answer})

    for mod in (evals_cli, align_cli, tom_cli):
        if hasattr(mod, "build_model"):
            monkeypatch.setattr(mod, "build_model", build)
        if hasattr(mod, "model_recipe"):
            monkeypatch.setattr(mod, "model_recipe", recipe)
    return built


def invoke(*args: str) -> Any:
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def ray_args(workers: int = 2, shard: int = 4) -> list[str]:
    return ["--engine", "ray", "--workers", str(workers), "--shard-size", str(shard)]


def stable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: stable(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def calls(summary_usage: dict[str, Any]) -> int:
    return sum(int(u["calls"]) + int(u["cache_hits"]) for u in summary_usage.values())


@pytest.fixture(scope="module")
def convs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "convs.jsonl"
    write_synthetic(path, 12, seed=3)
    return path


@pytest.mark.parametrize("which, extra", [
    # models listed out of sorted order: the merged items.jsonl keeps the listed order, as the local engine does
    ("thought-inference", ["--with-next-message", "-m", "b", "-m", "a", "--judge2", "j2"]),
    ("next-message", ["--condition", "history", "--condition", "thoughts", "--condition", "inferred"]),
])
def test_evals_on_ray_equal_the_local_engine_and_resume_with_no_call(ray_session, scripted, convs, tmp_path,
                                                                    which, extra):
    common = ["eval", which, str(convs), "--judge", "j", "--no-embeddings", "--json", *extra]
    local = json.loads(invoke(*common, "--out", str(tmp_path / "local"), "--cache", str(tmp_path / "c1")).stdout)
    out = tmp_path / "ray"
    first = json.loads(invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args()).stdout)
    assert first["engine"]["shards"] >= 3 and calls(first["usage_this_run"]) > 0
    assert first["n_items"] == local["n_items"] and first["overall"] == local["overall"]  # what --json printed
    assert jsonl(out / "items.jsonl") == jsonl(tmp_path / "local" / "items.jsonl")
    ray_summary = json.loads((out / "summary.json").read_text())
    local_summary = json.loads((tmp_path / "local" / "summary.json").read_text())
    assert stable(ray_summary) == stable(local_summary)  # bootstrap CIs over all records: the same numbers
    assert local_summary["n_items"] > 20
    roles = {spec.removeprefix("scripted:"): u["role"] for spec, u in ray_summary["usage"].items()}
    assert roles == {spec: u["role"] for spec, u in local_summary["usage"].items()}
    again = json.loads(invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args()).stdout)
    assert again["engine"]["shards_done_before"] == again["engine"]["shards"]
    assert calls(again["usage_this_run"]) == 0  # no call and no cache lookup: finished shards are skipped
    assert jsonl(out / "items.jsonl") == jsonl(tmp_path / "local" / "items.jsonl")


def test_simulate_on_ray_equals_the_local_engine_and_resumes_with_no_call(ray_session, scripted, convs, tmp_path):
    common = ["simulate", "--tasks-from", str(convs), "--per-task", "2", "--turns", "2", "-m", "asst", "-u", "usr"]
    invoke(*common, "--out", str(tmp_path / "local.jsonl"), "--cache", str(tmp_path / "c1"))
    out = tmp_path / "ray.jsonl"
    first = invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args())
    assert "24 conversations simulated, 0 already done" in first.stderr
    local = jsonl(tmp_path / "local.jsonl")
    assert len(local) == 24 and jsonl(out) == local
    again = invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args())
    assert "0 conversations simulated, 24 already done" in again.stderr
    assert again.stderr.count("usage: 0 model calls, 0 cache hits") == 2 and jsonl(out) == local  # user, assistant


def test_simulate_on_ray_needs_tasks_from(ray_session, scripted, tmp_path):
    res = CliRunner().invoke(cli, ["simulate", "--task", "plan a trip", "--out", str(tmp_path / "o.jsonl"),
                                   "--engine", "ray"])
    assert res.exit_code == 1 and "--tasks-from" in res.output and "Traceback" not in res.output


def test_align_rewrite_on_ray_equals_the_local_engine_and_resumes_with_no_call(ray_session, scripted, convs,
                                                                              tmp_path):
    common = ["align", "rewrite", str(convs), "--reactions", "all", "--guide", "thoughts", "-m", "rw"]
    invoke(*common, "--out", str(tmp_path / "local.jsonl"), "--cache", str(tmp_path / "c1"))
    out = tmp_path / "ray.jsonl"
    invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args())
    local = jsonl(tmp_path / "local.jsonl")
    assert len(local) >= 6 and jsonl(out) == local
    meta = json.loads((tmp_path / "ray.jsonl.meta.json").read_text())
    local_meta = json.loads((tmp_path / "local.jsonl.meta.json").read_text())
    assert set(local_meta) <= set(meta) and stable(meta) == stable(local_meta) | {
        "input": meta["input"], "engine": "ray", "shards": meta["shards"], "shards_done_before": 0}
    assert meta["usage"]["models"]["scripted:rw"]["calls"] == len(local)
    invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args())
    meta = json.loads((tmp_path / "ray.jsonl.meta.json").read_text())
    assert meta["shards_done_before"] == meta["shards"] and meta["usage"]["models"]["scripted:rw"]["calls"] == 0
    assert meta["usage"]["models"]["scripted:rw"]["cache_hits"] == 0 and jsonl(out) == local


def _tom_items(path: Path) -> Path:
    from thoughttrace.tom.items import ToMItem, write_items

    story = "1 Sally put the ball in the basket.\n2 Sally left.\n3 Anne moved the ball to the box."
    items = [ToMItem(id=f"t-{i}", benchmark="tomi" if i % 3 else "bigtom", story=story + f"\n4 Step {i}.",
                     question="Where does Sally think the ball is?", choices=["basket", "box", "floor"][: 2 + i % 2],
                     answer="A", question_type=("first_order_0_tom", "reality", "second_order")[i % 3],
                     split="dev" if i % 4 else "test") for i in range(14)]
    write_items(items, path)
    return path


def test_tom_bench_on_ray_equals_the_local_engine_and_resumes_with_no_call(ray_session, scripted, tmp_path):
    items = _tom_items(tmp_path / "items.jsonl")
    common = ["tom", "bench", str(items), "--method", "cot", "-m", "tm", "--json"]
    invoke(*common, "--out", str(tmp_path / "local"), "--cache", str(tmp_path / "c1"))
    out = tmp_path / "ray"
    first = json.loads(invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args(shard=3)).stdout)
    local = jsonl(tmp_path / "local" / "results.jsonl")
    assert len(local) == 10 and stable(jsonl(out / "results.jsonl")) == stable(local)  # the dev split only
    assert 0 < sum(r["correct"] for r in local) < 10 and not any(r["error"] for r in local)
    assert stable(json.loads((out / "summary.json").read_text())) == stable(
        json.loads((tmp_path / "local" / "summary.json").read_text()))
    assert first["engine"]["shards"] >= 3 and first["usage"]["calls"] > 0
    again = json.loads(invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args(shard=3)).stdout)
    assert again["engine"]["shards_done_before"] == again["engine"]["shards"]
    assert again["usage"]["calls"] == 0 and again["usage"]["cache_hits"] == 0
    assert stable(jsonl(out / "results.jsonl")) == stable(local)


def _flat(obj: Any, path: str = "") -> dict[str, Any]:
    """path -> leaf value, so two stats trees compare leaf by leaf."""
    if isinstance(obj, dict):
        return {k2: v for k, v in obj.items() for k2, v in _flat(v, f"{path}/{k}").items()}
    if isinstance(obj, list):
        return {k2: v for i, v in enumerate(obj) for k2, v in _flat(v, f"{path}/{i}").items()}
    return {path: obj}


@pytest.mark.model
def test_analyze_embeddings_on_ray_equal_the_local_engine_and_a_rerun_encodes_nothing(ray_session, convs, tmp_path):
    def run(out: str, cache: str, *extra: str) -> dict[str, Any]:
        res = invoke("analyze", str(convs), "--out", str(tmp_path / out), "--embedding-cache", str(tmp_path / cache),
                     "--projection", "pca", "--json", *extra)
        return json.loads(res.stdout)["semantic"]  # type: ignore[no-any-return]

    local = run("local", "v1.sqlite")
    ray_first = run("ray", "v2.sqlite", "--engine", "ray", "--workers", "2")
    assert local["available"] and ray_first["model"]["stats"]["encoded"] > 0
    assert ray_first["model"]["fingerprint"] == local["model"]["fingerprint"]
    # vectors encoded in other batches may differ in the last float32 bits: every figure agrees to 1e-5
    a, b = _flat({k: v for k, v in ray_first.items() if k != "model"}), _flat({k: v for k, v in local.items()
                                                                              if k != "model"})
    assert a.keys() == b.keys() and len(a) > 20
    assert {k: pytest.approx(v, abs=1e-5) if isinstance(v, float) else v for k, v in a.items()} == b
    again = run("ray", "v2.sqlite", "--engine", "ray", "--workers", "2")  # the vector cache is the resume source
    assert again["model"]["stats"]["encoded"] == 0 and again["model"]["stats"]["cache_hits"] > 0
    shared = run("ray2", "v1.sqlite", "--engine", "ray", "--workers", "2")  # on the local engine's cache
    assert shared["model"]["stats"]["encoded"] == 0
    assert {k: v for k, v in shared.items() if k != "model"} == {k: v for k, v in local.items() if k != "model"}


@pytest.mark.parametrize("args, message", [
    (["eval", "thought-inference", "{convs}", "--out", "{tmp}/o", "--no-embeddings", "--limit", "3"],
     "--limit is for --engine local"),
    (["eval", "next-message", "{convs}", "--out", "{tmp}/o", "--no-embeddings", "--limit", "3"],
     "--limit is for --engine local"),
    (["tom", "bench", "{convs}", "--out", "{tmp}/o", "--limit", "3"], "--limit is for --engine local"),
    (["align", "rewrite", "{convs}", "--out", "{tmp}/o.jsonl", "--limit", "3"], "--limit is for --engine local"),
    (["simulate", "--tasks-from", "{convs}", "--out", "{tmp}/o.jsonl", "--limit", "3"], "--limit is for --engine local"),
    (["align", "rewrite", "{tmp}/missing.jsonl", "--out", "{tmp}/o.jsonl"], "no such file"),
    (["align", "rewrite", "{convs}", "--out", "{tmp}/o.jsonl", "--shard-format", "parquet"],
     "--shard-format parquet is for `label`"),
    (["eval", "next-message", "{convs}", "--out", "{tmp}/o", "--no-embeddings", "--shard-format", "parquet"],
     "--shard-format parquet is for `label`"),
])
def test_whole_input_options_are_refused_on_ray_in_one_line(convs, tmp_path, args, message):
    argv = [a.format(convs=convs, tmp=tmp_path) for a in args] + ["--engine", "ray"]
    res = CliRunner().invoke(cli, argv)
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, res.output
