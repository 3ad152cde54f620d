"""`thoughttrace label --engine ray` through the CLI on a local Ray (fake fast servers as the pool)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from thoughttrace.batch import iter_records
from thoughttrace.data import write_synthetic

from .conftest import child_env, completions

pytest.importorskip("ray")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "thoughttrace", "label", *args], capture_output=True, text=True,
                          env=child_env(), timeout=600)


def test_ray_engine_cli_equals_local_and_writes_the_same_summary(tmp_path, fake_servers):
    (_, a), (_, b) = fake_servers(2)
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 40, seed=5)
    common = ["--model", "openai-compatible/fake", "--base-url", f"{a},{b}", "--no-cache", "--json"]
    local = _cli(str(data), "--out", str(tmp_path / "local.jsonl"), *common)
    assert local.returncode == 0, local.stderr
    ray = _cli(str(data), "--out", str(tmp_path / "ray"), *common, "--engine", "ray", "--workers", "2",
               "--shard-size", "10", "--shard-format", "parquet")
    assert ray.returncode == 0, ray.stderr[-3000:]
    local_meta, ray_meta = json.loads(local.stdout), json.loads(ray.stdout)
    assert set(local_meta) <= set(ray_meta)  # the same summary file, plus engine details
    assert ray_meta["summary"] == local_meta["summary"]
    records = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert list(iter_records(tmp_path / "ray")) == records
    assert json.loads((tmp_path / "ray.meta.json").read_text())["engine"] == "ray"
    by_endpoint = ray_meta["usage"]["models"]["openai-compatible/fake"]["by_endpoint"]
    assert set(by_endpoint) == {a, b} and all(e["requests"] > 0 for e in by_endpoint.values())
    served = completions(a) + completions(b)
    again = _cli(str(data), "--out", str(tmp_path / "ray"), *common, "--engine", "ray", "--shard-size", "10",
                 "--shard-format", "parquet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["usage"]["models"]["openai-compatible/fake"]["calls"] == 0
    assert completions(a) + completions(b) == served


@pytest.mark.parametrize("extra, message", [
    (["--limit", "3"], "--limit is for --engine local"),
    (["--retry-unlabelled"], "--retry-unlabelled is for --engine local"),
])
def test_local_only_options_are_refused_with_the_ray_engine(tmp_path, extra, message):
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 3, seed=5)
    res = _cli(str(data), "--out", str(tmp_path / "o"), "--model", "scripted", "--engine", "ray", *extra)
    assert res.returncode == 1 and message in res.stderr and "Traceback" not in res.stderr


def test_an_out_file_where_a_directory_is_needed_is_one_line(tmp_path):
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 3, seed=5)
    (tmp_path / "o.jsonl").write_text("x\n")
    res = _cli(str(data), "--out", str(tmp_path / "o.jsonl"), "--model", "scripted", "--engine", "ray")
    assert res.returncode == 1 and "names a directory of shards" in res.stderr and "Traceback" not in res.stderr


def test_a_directory_as_local_out_is_one_line(tmp_path):
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 3, seed=5)
    (tmp_path / "d").mkdir()
    res = _cli(str(data), "--out", str(tmp_path / "d"), "--model", "scripted")
    assert res.returncode == 1 and "is a directory" in res.stderr and "Traceback" not in res.stderr
