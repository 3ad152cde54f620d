"""The scale layer on a real local Ray (the session's, conftest.py): shares, cluster-wide limits, paths, errors, usage.

Fake OpenAI servers run as separate processes (their /stats count completions and the most requests in
flight at once); inputs are tiny because the machine has two cores.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from thoughttrace.batch import BatchError, ModelRecipe, iter_records, run_batch
from thoughttrace.batch.engine import ShardLedger, WorkerError, error_line
from thoughttrace.data import write_synthetic
from thoughttrace.label.batch_job import LabelShardJob
from thoughttrace.llm import get_model
from thoughttrace.llm.ledger import UsageLedger

from .conftest import server_stats

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def convs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "convs.jsonl"
    write_synthetic(path, 40, seed=11)
    return path


def test_ray_batch_size_1_splits_two_servers_evenly_and_reads_a_relative_fleet_yaml(ray_session, convs, tmp_path,
                                                                                     fake_servers, monkeypatch):
    (_, a), (_, b) = fake_servers(2)
    monkeypatch.chdir(tmp_path)  # the fleet file is relative to the driver's directory, not a worker's
    Path("fleet.yaml").write_text(f"endpoints:\n  - url: {a}\n  - url: {b}\n")
    res = run_batch(LabelShardJob(kinds=("domain",), batch_size=1), convs, tmp_path / "out",
                    ModelRecipe("openai-compatible/fake", base_url="fleet.yaml", cache=None), engine="ray",
                    workers=2, shard_rows=10)
    served = [server_stats(u)["completions"] for u in (a, b)]
    assert sum(served) == res.usage.calls >= 40
    assert all(abs(s / sum(served) - 0.5) <= 0.05 for s in served), served  # n = sum(served) requests
    pids = {json.loads(p.read_text())["pid"] for p in (tmp_path / "out" / "shards").glob("*.done.json")}
    assert len(pids) == 2  # both workers ran shards
    assert set(res.usage.by_endpoint) == {a, b}


def test_max_connections_is_the_server_total_across_two_workers(ray_session, tmp_path, fake_servers):
    (_, a), (_, b) = fake_servers(2, "--latency-ms", "100")
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"endpoints:\n  - url: {a}\n    max_connections: 4\n  - url: {b}\n    max_connections: 4\n")
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 120, seed=4)  # ~1 s per shard: the two workers' shards overlap
    run_batch(LabelShardJob(kinds=("domain",), batch_size=16), data, tmp_path / "out",
              ModelRecipe("openai-compatible/fake", base_url=str(fleet), cache=None), engine="ray", workers=2,
              shard_rows=20)
    peaks = [server_stats(u)["max_in_flight"] for u in (a, b)]
    # each worker gets 2 of a server's 4; kept per process, two workers would reach 8
    assert all(2 <= p <= 4 for p in peaks), peaks


def test_a_worker_error_on_ray_is_the_line_the_local_engine_prints(ray_session, convs, tmp_path):
    dead = "http://127.0.0.1:9/v1"
    recipe = ModelRecipe("openai-compatible/fake", base_url=dead, cache=None,
                         kwargs={"max_retries": 0})
    job = LabelShardJob(kinds=("domain",), batch_size=4, max_attempts=1)
    with pytest.raises(Exception) as local:
        run_batch(job, convs, tmp_path / "local", recipe, engine="local", shard_rows=40, shard_retries=0)
    with pytest.raises(WorkerError) as on_ray:
        run_batch(job, convs, tmp_path / "ray", recipe, engine="ray", workers=2, shard_rows=40, shard_retries=0)
    assert str(on_ray.value) == error_line(local.value)
    assert dead in str(on_ray.value) and "is the server up?" in str(on_ray.value)
    assert "UDF failed" not in str(on_ray.value) and "\n" not in str(on_ray.value)


def test_usage_counts_killed_attempts_over_runs_with_by_endpoint(convs, tmp_path, fake_servers):
    (_, a), = fake_servers(1)
    out = tmp_path / "out"
    recipe = ModelRecipe("openai-compatible/fake", base_url=a, cache=None)
    first = run_batch(LabelShardJob(kinds=("domain",), batch_size=4), convs, out, recipe, engine="local",
                      shard_rows=10)
    assert first.usage.calls == server_stats(a)["completions"] > 0
    # then a worker killed mid-shard: its call lines reach the ledger, its summary line never comes
    model = get_model("openai-compatible/fake", base_url=a, cache=False)
    ledger = ShardLedger(out)
    ledger.attach([model])
    ledger.start(0)
    for i in range(3):
        model.generate(f"killed {i}", max_tokens=4)
    again = run_batch(LabelShardJob(kinds=("domain",), batch_size=4), convs, out, recipe, engine="local",
                      shard_rows=10)
    served = server_stats(a)["completions"]
    assert again.usage.calls == 0  # this run: every shard was done
    assert again.cumulative["openai-compatible/fake"]["calls"] == served == first.usage.calls + 3
    assert again.ledger_runs == first.n_shards + 1
    by_endpoint = again.cumulative["openai-compatible/fake"]["by_endpoint"]
    # per-endpoint rows come with each shard's summary, and with each request as it is sent (the killed run's 3)
    assert by_endpoint[a]["requests"] == served


def test_a_sigkilled_ray_worker_still_has_its_requests_counted(ray_session, tmp_path, fake_servers):
    """A real Ray worker process SIGKILLed mid-shard: every request the server saw is in the reported usage."""
    (_, a), = fake_servers(1, "--latency-ms", "40", "--seed", "3")
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 240, seed=5)
    out = tmp_path / "out"
    recipe = ModelRecipe("openai-compatible/fake", base_url=a, cache=None, kwargs={"max_connections": 8})
    job = LabelShardJob(kinds=("domain",), batch_size=4)
    killed: list[int] = []

    def kill_a_worker_in_its_next_shard() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for marker in (out / "shards").glob("*.done.json"):
                pid = int(json.loads(marker.read_text())["pid"])  # a worker that finished a shard ...
                time.sleep(0.25)  # ... and is now well into its next one
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_in_its_next_shard)
    killer.start()
    try:
        res = run_batch(job, data, out, recipe, engine="ray", workers=2, shard_rows=40)
    except BatchError:  # restarts spent or the shard given up: the rerun does the rest
        res = run_batch(job, data, out, recipe, engine="ray", workers=2, shard_rows=40)
    killer.join()
    assert killed, "no worker was killed"
    runs = UsageLedger(out / "usage.jsonl").runs()
    assert any(r.get("interrupted") for r in runs)  # the kill landed mid-shard: that attempt has no summary line
    served = server_stats(a)["completions"]
    usage = res.cumulative["openai-compatible/fake"]
    requests = usage["by_endpoint"][a]["requests"]
    # every request the server saw is counted; at most the 4 the killed worker had reserved but not yet sent
    # (its share of max_connections 8) are counted without reaching the server
    assert served <= requests <= served + 4, (served, requests)
    # calls: answers that came back; the killed worker's in-flight ones never did
    assert served - 4 <= usage["calls"] <= served, (served, usage["calls"])
    ids = [r["item_id"] for r in iter_records(out)]
    assert len(ids) == len(set(ids)) == 240
