"""The must-show run: `label --engine ray` on a real two-node Ray cluster over a pool of two llama.cpp servers.

A head node and one more worker node (`ray start`, 1 CPU each, so the two workers sit on different nodes),
two llama.cpp servers (SmolLM2, 1 thread each, separate processes) as one endpoint pool. One server is killed
by its PID mid-job; the job must complete with every item exactly once, equal the local engine on the same
input and cache, and a rerun must make no model call. The test stops only the Ray processes it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from thoughttrace.batch import iter_records
from thoughttrace.data import iter_conversations, write_synthetic
from thoughttrace.label import extract_items

from .conftest import child_env as _base_env

pytestmark = [pytest.mark.slow, pytest.mark.model]

N_CONVERSATIONS = 200
SHARD_SIZE = 10


def child_env() -> dict[str, str]:
    # Ray 2.60 turns token authentication on for a head started by `ray start`; every process of the
    # cluster (and the driver) must then ask for it, with the token ~/.ray/auth_token the head wrote
    return {**_base_env(), "RAY_AUTH_MODE": "token"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_bin() -> str:
    path = Path(sys.executable).with_name("ray")
    return str(path) if path.exists() else "ray"


@pytest.fixture(scope="module")
def ray_cluster():
    """A head node plus one worker node on 127.0.0.1; every process of it is stopped afterwards, by PID."""
    temp = f"/tmp/ttray-{os.getpid()}"  # short: Ray's unix socket paths must stay under ~107 characters
    port = _free_port()
    env = child_env()
    common = ["--num-cpus", "1", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    try:
        subprocess.run([_ray_bin(), "start", "--head", "--port", str(port), "--include-dashboard", "false",
                        "--temp-dir", temp, *common], env=env, check=True, capture_output=True, timeout=180)
        subprocess.run([_ray_bin(), "start", "--address", f"127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        _stop_processes_of(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _stop_processes_of(temp: str) -> None:
    """Stop the processes of this cluster only: their command lines name its own temp/session directory."""
    ours = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(temp in part for part in (proc.info["cmdline"] or [])):
                ours.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in ours:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(ours, timeout=10)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def llama_pool():
    procs = []
    urls = []
    for _ in range(2):
        p = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.server", "--model", "smollm2", "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env())
        procs.append(p)
        assert p.stdout is not None
        urls.append(p.stdout.readline().strip())
    assert all(u.startswith("http://127.0.0.1:") for u in urls), urls
    yield procs, urls
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _label(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "thoughttrace", "label", *args, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


def test_label_on_a_ray_cluster_survives_a_dead_server_and_equals_the_local_engine(ray_cluster, llama_pool, tmp_path):
    (victim, _survivor), (url_a, url_b) = llama_pool
    data = tmp_path / "convs.jsonl"
    write_synthetic(data, N_CONVERSATIONS, seed=13)
    cache = tmp_path / "cache.sqlite"  # one host: both Ray nodes share this SQLite file (WAL)
    out = tmp_path / "labels_ray"
    common = ["--model", "openai-compatible/smollm2", "--cache", str(cache), "--kind", "domain", "--batch-size", "4"]
    ray_args = [str(data), "--out", str(out), *common, "--base-url", f"{url_a},{url_b}", "--engine", "ray",
                "--ray-address", ray_cluster, "--workers", "2", "--shard-size", str(SHARD_SIZE)]

    job = _label(ray_args)
    deadline = time.time() + 600
    while len(list((out / "shards").glob("*.done.json"))) < 3 if (out / "shards").exists() else True:
        assert job.poll() is None, job.communicate()
        assert time.time() < deadline, "no shard finished in 10 minutes"
        time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)  # one replica of the pool dies mid-job
    stdout, stderr = job.communicate(timeout=900)
    assert job.returncode == 0, stderr[-3000:]
    meta = json.loads(stdout)

    expected = [it.item_id for it in extract_items(iter_conversations(data), ["domain"])]
    records = list(iter_records(out))
    ids = [r["item_id"] for r in records]
    assert len(ids) == len(set(ids)) == N_CONVERSATIONS  # nothing duplicated
    assert ids == expected  # nothing lost, in input order
    usage = meta["usage"]["models"]["openai-compatible/smollm2"]
    assert usage["by_endpoint"][url_a]["taken_out"] >= 1  # the dead server was taken out of the pool
    assert usage["by_endpoint"][url_b]["requests"] > 0
    assert meta["shards"] >= N_CONVERSATIONS // SHARD_SIZE // 2  # cut from a byte sample: about 20
    workers = {json.loads(p.read_text())["pid"] for p in (out / "shards").glob("*.done.json")}
    assert len(workers) == 2, workers  # both Ray workers (one per node) ran shards

    # the local engine on the same input and cache: the same records, all from the cache
    local = tmp_path / "labels_local.jsonl"
    lj = _label([str(data), "--out", str(local), *common, "--base-url", url_b])
    stdout, stderr = lj.communicate(timeout=600)
    assert lj.returncode == 0, stderr[-3000:]
    assert [json.loads(line) for line in local.read_text().splitlines()] == records
    assert json.loads(stdout)["usage"]["models"]["openai-compatible/smollm2"]["calls"] == 0

    # a rerun on the cluster skips every finished shard: zero model calls
    again = _label(ray_args)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    rerun = json.loads(stdout)
    assert rerun["shards_done_before"] == rerun["shards"]
    assert rerun["usage"]["models"]["openai-compatible/smollm2"]["calls"] == 0
    assert rerun["usage"]["models"]["openai-compatible/smollm2"]["cache_hits"] == 0
    assert [r["item_id"] for r in iter_records(out)] == expected
