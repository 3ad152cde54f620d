"""`--engine ray` on every batch job but label (tested in test_label_ray_cli.py): one local Ray for the module.

Each job runs on the local engine and on Ray (2 workers, small shards) over the same input with a
deterministic scripted model (tests/scale/scripted_roles.py), the outputs and summary files must be equal,
and a Ray rerun must skip every finished shard with zero model calls.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thoughttrace.batch import ModelRecipe
from thoughttrace.cli.main import cli
from thoughttrace.data import write_synthetic
from thoughttrace.llm import get_model

from . import scripted_roles
from .conftest import SRC

ray = pytest.importorskip("ray")

#: fields that differ between any two runs (wall clock, timestamps, usage of that run)
VOLATILE = {"created", "usage", "usage_this_run", "seconds", "wall_seconds"}


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray (2 CPUs) shared by every test of this module; run_batch joins it."""
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"env_vars": {"PYTHONPATH": SRC}})
    ray.cloudpickle.register_pickle_by_value(scripted_roles)
    yield
    ray.shutdown()


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
    ("thought-inference", ["--with-next-message", "-m", "a", "-m", "b", "--judge2", "j2"]),
    ("next-message", ["--condition", "history", "--condition", "thoughts", "--condition", "inferred"]),
])
def test_evals_on_ray_equal_the_local_engine_and_resume_with_no_call(ray_session, scripted, convs, tmp_path,
                                                                    which, extra):
    common = ["eval", which, str(convs), "--judge", "j", "--no-embeddings", "--json", *extra]
    local = json.loads(invoke(*common, "--out", str(tmp_path / "local"), "--cache", str(tmp_path / "c1")).stdout)
    out = tmp_path / "ray"
    first = json.loads(invoke(*common, "--out", str(out), "--cache", str(tmp_path / "c2"), *ray_args()).stdout)
    assert first["engine"]["shards"] >= 3 and calls(first["usage_this_run"]) > 0
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
