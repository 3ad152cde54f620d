"""The batch engine without Ray (engine='local' runs the same shards in this process): shards, resume, formats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from thoughttrace.batch import BatchError, ModelRecipe, iter_records, plan_shards, read_shard, run_batch
from thoughttrace.data import write_synthetic
from thoughttrace.data.exporters import export, iter_any
from thoughttrace.label import label_dataset
from thoughttrace.label.batch_job import LabelShardJob
from thoughttrace.llm import get_model

from .conftest import completions


@pytest.fixture
def dataset(tmp_path):
    p = tmp_path / "convs.jsonl"
    write_synthetic(p, 60, seed=3)
    return p


def test_shards_cover_every_conversation_once(dataset, tmp_path):
    ids = [c.id for c in iter_any(dataset)]
    for rows in (1, 7, 25, 1000):
        plan = plan_shards(dataset, rows).as_dict()
        got = [c.id for k in range(plan["n_shards"]) for c in read_shard(plan, k)]
        assert got == ids, rows
    for fmt, target in (("parquet", tmp_path / "c.parquet"), ("hf", tmp_path / "hf")):
        export(iter_any(dataset), fmt, target)
        plan = plan_shards(target, 7).as_dict()
        assert plan["n_shards"] == 9
        assert [c.id for k in range(9) for c in read_shard(plan, k)] == ids


@pytest.mark.parametrize("shard_format", ["jsonl", "parquet"])
def test_sharded_labels_equal_the_local_engine_and_resume_makes_no_calls(dataset, tmp_path, fake_servers,
                                                                         shard_format):
    (_, url), = fake_servers(1)
    cache = tmp_path / "cache.sqlite"
    local_out = tmp_path / "local.jsonl"
    label_dataset(dataset, get_model("openai-compatible/fake", base_url=url, cache=False), local_out)
    local = [json.loads(line) for line in local_out.read_text().splitlines()]
    job = LabelShardJob(kinds=("reason", "reaction"))
    recipe = ModelRecipe("openai-compatible/fake", base_url=url, cache=str(cache))
    out = tmp_path / "sharded"
    first = run_batch(job, dataset, out, recipe, engine="local", shard_rows=8, shard_format=shard_format)
    assert first.n_shards > 3 and first.done_before == 0
    assert list(iter_records(out)) == local
    assert first.summary["labelled"] + first.summary["unlabelled"] == len(local)
    assert first.usage.calls + first.usage.cache_hits == len(local)  # identical prompts hit the cache
    served = completions(url)
    again = run_batch(job, dataset, out, recipe, engine="local", shard_rows=8, shard_format=shard_format)
    assert again.done_before == first.n_shards and again.usage.calls == 0 and again.summary == {}
    assert again.skipped_summary["items"] == len(local)
    assert completions(url) == served  # the server saw no request


def test_an_interrupted_run_resumes_at_the_unfinished_shards(dataset, tmp_path, fake_servers):
    (_, url), = fake_servers(1)
    job = LabelShardJob(kinds=("reason",))
    recipe = ModelRecipe("openai-compatible/fake", base_url=url, cache=None)
    out = tmp_path / "o"
    full = run_batch(job, dataset, out, recipe, engine="local", shard_rows=10)
    reference = list(iter_records(out))
    for k in (1, 4):  # two shards "never finished": only their done marker decides
        (out / "shards" / f"part-{k:05d}.done.json").unlink()
    before = completions(url)
    rerun = run_batch(job, dataset, out, recipe, engine="local", shard_rows=10)
    assert rerun.done_before == full.n_shards - 2
    redone = rerun.summary["items"]
    assert completions(url) - before == redone > 0
    assert list(iter_records(out)) == reference


def test_a_rerun_with_other_settings_or_a_changed_input_is_refused(dataset, tmp_path, fake_servers):
    (_, url), = fake_servers(1)
    recipe = ModelRecipe("openai-compatible/fake", base_url=url, cache=None)
    out = tmp_path / "o"
    run_batch(LabelShardJob(kinds=("reason",)), dataset, out, recipe, engine="local", shard_rows=30)
    with pytest.raises(BatchError, match="made by another run"):
        run_batch(LabelShardJob(kinds=("reaction",)), dataset, out, recipe, engine="local", shard_rows=30)
    with dataset.open("a") as fh:
        fh.write("\n")
    with pytest.raises(Exception, match="changed since this output was started"):
        run_batch(LabelShardJob(kinds=("reason",)), dataset, out, recipe, engine="local", shard_rows=30)
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "x.txt").write_text("x")
    with pytest.raises(BatchError, match="not a batch output directory"):
        run_batch(LabelShardJob(kinds=("reason",)), dataset, stray, recipe, engine="local")


def test_label_eval_reads_a_sharded_output(dataset, tmp_path, fake_servers):
    from click.testing import CliRunner

    from thoughttrace.cli.main import cli

    (_, url), = fake_servers(1)
    out = tmp_path / "o"
    run_batch(LabelShardJob(kinds=("reason",)), dataset, out, ModelRecipe("openai-compatible/fake", base_url=url,
              cache=None), engine="local", shard_rows=10)
    local = tmp_path / "local.jsonl"
    label_dataset(dataset, get_model("openai-compatible/fake", base_url=url, cache=False), local, kinds=("reason",))
    runner = CliRunner()
    a = runner.invoke(cli, ["label-eval", str(dataset), str(out), "--json"])
    b = runner.invoke(cli, ["label-eval", str(dataset), str(local), "--json"])
    assert a.exit_code == 0 and b.exit_code == 0, a.output
    assert json.loads(a.output)["kinds"] == json.loads(b.output)["kinds"]
    assert json.loads(a.output)["kinds"]["reason"]


@dataclass(frozen=True)
class _FlakyJob:
    """Records per conversation; the ids listed in `failing` (a file) fail, as a model error would."""

    failing: str
    name: str = "flaky"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": self.name, "model": model_spec}

    def run_shard(self, conversations, model):
        bad = set(Path(self.failing).read_text().split())
        records = [{"id": c.id, "ok": c.id not in bad} for c in conversations]
        return records, {"items": len(records), "failed": sum(not r["ok"] for r in records)}


def test_a_shard_with_failed_records_is_redone_by_the_rerun_and_only_it(dataset, tmp_path):
    ids = [c.id for c in iter_any(dataset)]
    failing = tmp_path / "failing.txt"
    failing.write_text(f"{ids[12]} {ids[15]}")  # both in shard 1 of 10-row shards
    job, recipe, out = _FlakyJob(str(failing)), ModelRecipe("scripted", cache=None), tmp_path / "o"
    first = run_batch(job, dataset, out, recipe, engine="local", shard_rows=10)
    assert first.summary["failed"] == 2 and first.done_before == 0
    still = run_batch(job, dataset, out, recipe, engine="local", shard_rows=10)  # still failing: tried again
    assert still.done_before == first.n_shards - 1 and still.summary == {"items": 10, "failed": 2}
    failing.write_text("")  # the server is back
    healed = run_batch(job, dataset, out, recipe, engine="local", shard_rows=10)
    assert healed.done_before == first.n_shards - 1 and healed.summary == {"items": 10, "failed": 0}
    assert [r["id"] for r in iter_records(out)] == ids and all(r["ok"] for r in iter_records(out))
    done = run_batch(job, dataset, out, recipe, engine="local", shard_rows=10)
    assert done.done_before == first.n_shards and done.summary == {}


@dataclass(frozen=True)
class _TransientJob:
    """Each shard's model calls fail transiently `failures` times (counted in a file), then succeed."""

    counter: str
    failures: int
    name: str = "transient"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": self.name, "model": model_spec}

    def run_shard(self, conversations, model):
        from thoughttrace.llm import ServerError

        path = Path(self.counter)
        seen = int(path.read_text() or 0) if path.exists() else 0
        path.write_text(str(seen + 1))
        if seen < self.failures:
            raise ServerError("every endpoint of the pool is out")
        records = [{"id": c.id} for c in conversations]
        return records, {"items": len(records)}


@pytest.mark.parametrize("failures, succeeds", [(2, True), (3, False)])
def test_a_transiently_failing_shard_is_tried_twice_more(dataset, tmp_path, monkeypatch, failures, succeeds):
    from thoughttrace.batch import engine

    monkeypatch.setattr(engine.time, "sleep", lambda seconds: None)  # the pause between tries, not its length
    counter = tmp_path / "tries.txt"
    plan = plan_shards(dataset, 100).as_dict()
    out = tmp_path / "o"
    (out / "shards").mkdir(parents=True)
    job = _TransientJob(str(counter), failures)
    if succeeds:
        done = engine.process_shard(job, get_model("scripted", cache=False), plan, 0, out, "jsonl", False)
        assert done["attempts"] == 3 and done["records"] == 60
    else:
        with pytest.raises(Exception, match="every endpoint of the pool is out"):
            engine.process_shard(job, get_model("scripted", cache=False), plan, 0, out, "jsonl", False)
        assert not (out / "shards" / "part-00000.done.json").exists()
    assert counter.read_text() == "3"  # the first try and shard_retries=2 more, never a fourth


def test_records_of_a_shard_without_its_done_marker_are_not_read(dataset, tmp_path):
    ids = [c.id for c in iter_any(dataset)]
    out, none_failing = tmp_path / "o", tmp_path / "none.txt"
    none_failing.write_text("")
    run_batch(_FlakyJob(str(none_failing)), dataset, out, ModelRecipe("scripted", cache=None), engine="local",
              shard_rows=10)
    assert [r["id"] for r in iter_records(out)] == ids
    shard2 = {c.id for c in read_shard(plan_shards(dataset, 10).as_dict(), 2)}
    assert shard2
    (out / "shards" / "part-00002.done.json").unlink()  # its records file stays: stale or unfinished output
    assert (out / "shards" / "part-00002.jsonl").exists()
    assert [r["id"] for r in iter_records(out)] == [i for i in ids if i not in shard2]


@dataclass(frozen=True)
class _TwoModelJob:
    """Per conversation one record for each model, models in the order given (an eval's model order)."""

    models: tuple[str, ...] = ("zeta", "alpha", "mid")
    name: str = "two-model"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": self.name, "model": model_spec}

    def run_shard(self, conversations, model):
        records = [{"model": m, "id": c.id} for c in conversations for m in self.models]
        return records, {"items": len(records)}


def test_merged_output_keeps_each_group_in_first_appearance_order(dataset, tmp_path):
    from thoughttrace.batch import write_merged

    ids = [c.id for c in iter_any(dataset)]
    out = tmp_path / "o"
    run_batch(_TwoModelJob(), dataset, out, ModelRecipe("scripted", cache=None), engine="local", shard_rows=7)
    dest = tmp_path / "merged.jsonl"
    assert write_merged(out, dest, group_by="model") == 3 * len(ids)
    got = [json.loads(line) for line in dest.read_text().splitlines()]
    assert [(r["model"], r["id"]) for r in got] == [(m, i) for m in ("zeta", "alpha", "mid") for i in ids]
