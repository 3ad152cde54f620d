"""Batch-engine rules that scripts/mutate.py found unprotected in the fast suite (batch/engine.py), tested
without Ray: which key variables travel to workers, one Model for equal recipes, a finished shard not redone,
the one-line error texts (also for a Ray failure's exception chain), and the sums of counts and costs.

Why: each is a promise the Ray path relies on but the fast tests (local engine) never exercised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.batch.engine import (
    BatchError,
    ModelRecipe,
    add_counts,
    build_models,
    error_line,
    marker_path,
    process_shard,
    run_batch,
    shard_path,
    sum_usage,
    worker_error,
    write_merged,
)


def test_only_endpoints_that_name_a_key_variable_forward_one() -> None:
    r = ModelRecipe("scripted", base_url=[{"url": "http://127.0.0.1:1/v1", "api_key_env": "TT_KEY_A"},
                                          {"url": "http://127.0.0.1:2/v1"}, "http://127.0.0.1:3/v1"])
    assert r.key_variables() == ["TT_KEY_A"]
    assert ModelRecipe("scripted", base_url="http://127.0.0.1:1/v1").key_variables() == []


def test_equal_recipes_share_one_model_different_ones_do_not() -> None:
    same = ModelRecipe("scripted", cache=None)
    models = build_models({"model": same, "judge": ModelRecipe("scripted", cache=None),
                           "user": ModelRecipe("scripted:other", cache=None)})
    assert set(models) == {"model", "judge", "user"}
    assert models["model"] is models["judge"] and models["user"] is not models["model"]


class _Refuses:
    """A job that must not run: the shard is already done."""

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": "refuses"}

    def run_shard(self, conversations: Any, model: Any) -> Any:
        raise AssertionError("a finished shard was run again")


def test_a_shard_with_its_done_marker_is_returned_as_recorded_not_rerun(tmp_path: Path) -> None:
    marker = marker_path(tmp_path, 3)
    marker.parent.mkdir(parents=True)
    done = {"format_version": 1, "shard": 3, "records": 7, "summary": {"labels": 7}}
    marker.write_text(json.dumps(done), encoding="utf-8")
    assert process_shard(_Refuses(), None, {}, 3, tmp_path, "jsonl", False) == done


def test_error_lines_name_the_file_and_the_problem() -> None:
    err = FileNotFoundError(2, "No such file or directory", "/data/convs.jsonl")
    assert error_line(err) == ("/data/convs.jsonl: No such file or directory (check the path, its permissions and "
                               "the free space)")
    assert error_line(OSError(28, "No space left on device")) == (
        "No space left on device (check the path, its permissions and the free space)")
    assert error_line(BatchError("shard 2: bad row")) == "shard 2: bad row"
    from thoughttrace.llm.errors import LLMError

    assert error_line(LLMError("no such model")) == "LLMError: no such model"


def test_a_ray_failure_reports_our_own_error_found_in_its_chain() -> None:
    ours = BatchError("shard 4: the input changed since the first run")
    try:
        try:
            raise ours
        except BatchError as exc:
            raise RuntimeError("RayTaskError(...) long traceback") from exc
    except RuntimeError as outer:
        assert worker_error(outer) == "shard 4: the input changed since the first run"
    plain = worker_error(RuntimeError("actor died"))
    assert "a Ray worker died or the cluster stopped answering" in plain and "(RuntimeError)" in plain


def test_counts_add_up_nested_and_costs_add_up_when_given() -> None:
    acc = add_counts({"labels": {"goal": 1}, "calls": 2}, {"labels": {"goal": 2, "plan": 1}, "calls": 3, "x": None})
    assert acc == {"labels": {"goal": 3, "plan": 1}, "calls": 5}
    rep = sum_usage([{"calls": 1, "cost_usd": 0.5}, {"calls": 2, "cost_usd": 0.25}, {"calls": 1}], 2.0)
    assert rep.calls == 4 and rep.cost_usd == 0.75 and rep.wall_seconds == 2.0
    assert sum_usage([{"calls": 1}], 1.0).cost_usd is None


def test_a_multi_line_message_of_a_known_error_is_kept_whole() -> None:
    from thoughttrace.llm.errors import LLMError

    assert error_line(LLMError("no cached answer\nrun once online")) == "LLMError: no cached answer\nrun once online"
    assert error_line(RuntimeError("boom\ntraceback text")) == "RuntimeError: boom"  # an unknown one: first line


def test_an_output_that_is_a_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("{}\n", encoding="utf-8")
    with pytest.raises(BatchError, match="out.jsonl is a file; with --engine ray, --out names a directory"):
        run_batch(_Refuses(), tmp_path / "none.jsonl", out, ModelRecipe("scripted", cache=None))


def test_write_merged_takes_a_string_destination(tmp_path: Path) -> None:
    out = tmp_path / "batch"
    (out / "shards").mkdir(parents=True)
    (out / "plan.json").write_text(json.dumps({"shard_format": "jsonl", "plan": {"n_shards": 1}}), encoding="utf-8")
    shard_path(out, 0, "jsonl").write_text('{"id": 1}\n{"id": 2}\n', encoding="utf-8")
    marker_path(out, 0).write_text("{}", encoding="utf-8")
    dest = tmp_path / "merged" / "items.jsonl"
    assert write_merged(out, str(dest)) == 2
    assert dest.read_text(encoding="utf-8") == '{"id": 1}\n{"id": 2}\n'


def test_a_shard_writes_each_call_to_the_ledger_while_it_runs(tmp_path: Path) -> None:
    """A worker killed before its shard ends leaves its calls in the ledger: the line is there before finish()."""
    from thoughttrace.batch.engine import ShardLedger
    from thoughttrace.llm import get_model

    model = get_model("scripted", cache=False, default="An answer.")
    ledger = ShardLedger(tmp_path)
    ledger.attach([model])
    ledger.start(3)
    model.generate("hello")
    lines = [json.loads(x) for x in ledger.ledger.path.read_text(encoding="utf-8").splitlines()]
    assert [x["run"].split("-")[:2] for x in lines] == [["shard", "3"]] and lines[0]["event"]
    ledger.finish({})


def test_the_ray_engine_without_ray_data_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from thoughttrace.batch import engine

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as without the extra
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(BatchError, match=r"needs Ray Data: `pip install 'thoughttrace\[scale\]'`"):
        engine._ray(None, 1, 1.0)


def test_each_ray_worker_takes_one_shard_at_a_time() -> None:
    # with Ray Data's default queue of tasks per actor, the worker that started first took both shards of a
    # 2,000-item run while the other got none (twice the time; bench/batch_scale.py)
    data = pytest.importorskip("ray.data")
    from thoughttrace.batch.engine import _map_shards

    seen: dict[str, Any] = {}

    class Recorder:
        def map_batches(self, fn: Any, **kwargs: Any) -> Recorder:
            seen.update(kwargs)
            return self

    _map_shards(Recorder(), data, None, None, {}, Path("out"), "jsonl", False, workers=2,  # type: ignore[arg-type]
                cpus_per_worker=1.0)
    assert seen["compute"].max_tasks_in_flight_per_actor == 1
    assert seen["batch_size"] == 1
