"""Resume after a killed run: our per-shard done markers against Ray Data's own checkpointing, measured.

Issue 26 asked to decide between the done markers of `--engine ray` and `ray.data.checkpoint` (CheckpointConfig,
alpha in Ray 2.60) on measured behaviour. Both pipelines label the same N items, one request per item, against
one fake OpenAI-compatible server (its own process, lognormal latency), on an existing Ray cluster:

- markers: `thoughttrace label --engine ray --workers 2 --shard-size S --ray-address auto` (what we ship);
- ray-checkpoint: `read_json` of a folder with one file per marker shard (read_json reads a single file as one
  task: with one 2,000-line file a killed run had written, so checkpointed, nothing) `-> map_batches` (an
  actor pool of 2, each sending its batch's requests at once, the same bodies) `-> write_json`, with
  `DataContext.checkpoint_config = CheckpointConfig(id_column="id", ...)`.

For each: (1) an uninterrupted run, `--reps` times (for Ray Data with and without the checkpoint config: its
overhead); (2) a run whose driver is SIGKILLed once the server has served half the items, then a rerun to the
end. Reported: requests the server saw over kill + rerun (redone = that minus N), rows in the final output,
distinct, duplicated and missing ids, and the rerun's wall time.

    ray start --head --num-cpus 2
    python bench/ray_checkpoint.py --items 2000 --out artifacts/ray_checkpoint
    ray stop

Writes OUT/summary.json (format_version 1) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))
from thoughttrace.llm.fakeserver import kill_when_served, stats_of  # noqa: E402

FORMAT_VERSION = 1

#: the Ray Data pipeline with (or without: checkpoint path "-") Ray's own checkpointing
_RAYDATA = r'''
import concurrent.futures, sys, httpx, ray
from ray.data.checkpoint import CheckpointConfig
from ray.data.context import DataContext
inp, out, url, ckpt, per_actor = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
ctx = DataContext.get_current()
ctx.enable_progress_bars = False
if ckpt != "-":
    ctx.checkpoint_config = CheckpointConfig(id_column="id", checkpoint_path=ckpt, delete_checkpoint_on_success=False)
class Label:
    def __init__(self):
        self.client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=per_actor))
        self.pool = concurrent.futures.ThreadPoolExecutor(per_actor)
    def one(self, text):
        r = self.client.post("/chat/completions", json={"model": "fake", "max_tokens": 16,
                             "messages": [{"role": "user", "content": text}]})
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"]
    def __call__(self, batch):
        batch["label"] = list(self.pool.map(self.one, list(batch["text"])))
        return batch
ds = ray.data.read_json(inp).map_batches(Label, batch_size=per_actor, concurrency=2, num_cpus=0.5)
ds.write_json(out)
'''


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["THOUGHTTRACE_NO_CACHE"] = "1"
    return env


def _server(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--latency-ms", str(latency_ms),
                          "--seed", "1"], stdout=subprocess.PIPE, text=True, env=_env())
    assert p.stdout is not None
    return p, p.stdout.readline().strip()


def _fresh(*paths: Path) -> None:
    for p in paths:
        for q in [p, *p.parent.glob(p.name + ".*")]:
            if q.is_dir():
                shutil.rmtree(q)
            else:
                q.unlink(missing_ok=True)


def _served(url: str) -> int:
    return int(stats_of(url)["completions"])


def _reset(url: str) -> None:
    import urllib.request
    with urllib.request.urlopen(url + "/reset", timeout=10) as r:
        r.read()


class Pipeline:
    """One way to label the items: its command, its outputs, and how to read the ids it wrote."""

    def __init__(self, name: str, out: Path, data: Path, text_data: Path, url: str, fleet: Path, args: Any,
                 checkpoint: bool = True) -> None:
        self.name, self.url = name, url
        self.dest = out / f"{name}-out"
        self.ckpt = out / f"{name}-ckpt"
        self.checkpoint = checkpoint
        if name == "markers":
            self.cmd = [sys.executable, "-m", "thoughttrace", "label", str(data), "--out", str(self.dest),
                        "--model", "openai-compatible/fake", "--base-url", str(fleet), "--no-cache", "--kind",
                        "domain", "--batch-size", str(args.in_flight), "--engine", "ray", "--workers", "2",
                        "--shard-size", str(args.shard_size), "--ray-address", "auto", "--json"]
        else:
            self.cmd = [sys.executable, "-c", _RAYDATA, str(text_data), str(self.dest), url,
                        str(self.ckpt) if checkpoint else "-", str(args.in_flight // 2)]

    def clean(self) -> None:
        _fresh(self.dest, self.ckpt)

    def run(self) -> float:
        t0 = time.perf_counter()
        res = subprocess.run(self.cmd, capture_output=True, text=True, env=_env(), timeout=1800)
        if res.returncode != 0:
            raise SystemExit(f"{self.name} failed: {res.stderr[-3000:]}")
        return time.perf_counter() - t0

    def ids(self) -> list[str]:
        if self.name == "markers":
            from thoughttrace.batch import iter_records
            return [str(r["conversation_id"]) for r in iter_records(self.dest)]
        found: list[str] = []
        for f in sorted(self.dest.glob("*.json*")):
            found += [str(json.loads(line)["id"]) for line in f.read_text().splitlines() if line.strip()]
        return found


def _text_items(data: Path, dest: Path, per_file: int) -> list[str]:
    """The conversations as {id, text} rows for the Ray Data pipeline (same items, same request count), in
    files of `per_file` rows (the markers' shard size) under the folder `dest`."""
    ids: list[str] = []
    rows: list[str] = []
    with open(data) as src:
        for line in src:
            conv = json.loads(line)
            cid = str(conv.get("id"))
            ids.append(cid)
            rows.append(json.dumps({"id": cid, "text": conv["messages"][0]["content"]}))
    _fresh(dest)
    dest.mkdir(parents=True)
    for k in range(0, len(rows), per_file):
        (dest / f"part-{k // per_file:05d}.jsonl").write_text("\n".join(rows[k:k + per_file]) + "\n")
    return ids


def measure(p: Pipeline, n: int, expected: list[str], reps: int) -> dict[str, Any]:
    walls = []
    for _ in range(reps):
        p.clean()
        _reset(p.url)
        walls.append(p.run())
        assert _served(p.url) == n, f"{p.name}: an uninterrupted run served {_served(p.url)} of {n}"
    row: dict[str, Any] = {"pipeline": p.name, "checkpoint": p.checkpoint, "wall_s": round(statistics.median(walls), 2),
                           "walls": [round(w, 2) for w in walls]}
    if not p.checkpoint:
        return row
    p.clean()
    _reset(p.url)
    at_kill = kill_when_served(p.cmd, p.url, n // 2, env=_env(), timeout=600)
    t0 = time.perf_counter()
    p.run()
    rerun = time.perf_counter() - t0
    got = p.ids()
    total = _served(p.url)
    want = set(expected)
    row.update({"served_at_kill": at_kill, "served_total": total, "redone": total - n, "rows": len(got),
                "distinct": len(set(got)), "duplicates": len(got) - len(set(got)),
                "missing": len(want - set(got)), "rerun_wall_s": round(rerun, 2)})
    return row


def main() -> None:
    from thoughttrace.data import write_synthetic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("artifacts/ray_checkpoint"))
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--in-flight", type=int, default=16, help="requests in flight in all (half per Ray Data actor)")
    ap.add_argument("--shard-size", type=int, default=250, help="the markers pipeline's shards")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    args.out = args.out.resolve()  # Ray's checkpoint path must be absolute (a URI)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / f"convs-{args.items}.jsonl"
    if not data.exists():
        write_synthetic(data, args.items, seed=7)
    items = args.out / f"items-{args.items}"
    expected = _text_items(data, items, args.shard_size)
    proc, url = _server(args.latency_ms)
    fleet = args.out / "fleet.yaml"
    fleet.write_text(f"format_version: 1\nendpoints:\n  - url: {url}\n    max_connections: {args.in_flight}\n")
    rows = []
    try:
        for name, ckpt in (("markers", True), ("ray-checkpoint", False), ("ray-checkpoint", True)):
            p = Pipeline(name, args.out, data, items, url, fleet, args, ckpt)
            rows.append(measure(p, args.items, expected, args.reps))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        proc.kill()
    summary = {"format_version": FORMAT_VERSION, "items": args.items, "latency_median_ms": args.latency_ms,
               "in_flight": args.in_flight, "shard_size": args.shard_size, "rows": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\npipeline        checkpoint  wall s  served at kill  served total  redone  rows  dup  missing  rerun s")
    for r in rows:
        print(f"{r['pipeline']:<15} {str(r['checkpoint']):<10} {r['wall_s']:>7.2f} " + (
            f"{r['served_at_kill']:>14} {r['served_total']:>13} {r['redone']:>7} {r['rows']:>5} {r['duplicates']:>4} "
            f"{r['missing']:>8} {r['rerun_wall_s']:>8.2f}" if "rows" in r else ""))


if __name__ == "__main__":
    main()
