"""Batch labelling against heavy-tailed servers: local engine, Ray and a plain asyncio client, side by side.

A fake OpenAI-compatible server (thoughttrace.llm.fakeserver, its own process) answers each request after a
lognormal delay with median `--latency-ms` and p99 ten times that (real servers have such tails). Three
clients send one request per item at the same concurrency `--in-flight`:

- plain: httpx.AsyncClient + asyncio.Semaphore, the same request bodies (the ceiling: no cache, no parsing);
- local: `thoughttrace label --kind domain --batch-size IN_FLIGHT` (a sliding window of calls);
- ray: the same with `--engine ray --workers 2` (a new local Ray each run; the fleet's max_connections =
  IN_FLIGHT is split between the workers, so the server sees the same concurrency).

Each client runs in its own process, one after the other, `--reps` times in turn (plain, local, ray, plain,
...). Before each, the server is reset (`GET /reset`): every client meets the same sequence of latency draws,
in arrival order, and items/s is measured on the server's clock, from the first request it received to the
last it answered (`busy_seconds`), the same for all three (process start-up, imports and reading the input
are outside it; Ray's start-up, first request minus command start, is printed beside it, with the whole
wall time). Ratios are the median of the per-rep ratios (each rep's clients ran back to back, under the same
load of a shared machine). The driver's peak RSS is its ru_maxrss; CPU ms per item is the client process's
user+system time over the items (for Ray: the driver only). Then the split between two equal servers at 1,
4 and 64 in flight, on both engines (server counts).

    nice -n 10 python bench/batch_scale.py --sizes 200,2000 --out artifacts/batch_scale
    ray start --head --num-cpus 2 && python bench/batch_scale.py --ray-address auto ...   # an existing cluster

Writes OUT/summary.json (format_version 3) and prints the tables.
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
import urllib.request
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
FORMAT_VERSION = 3
#: shards per Ray worker (`--ray-shards-per-worker`): each shard ends by waiting for its slowest request
SHARDS_PER_WORKER = 4
#: a fixed Ray shard size (`--ray-shard-size`, the CLI's own default is 1000), capped so both workers get one
SHARD_SIZE: int | None = None

#: the plain client: same bodies, a semaphore, one request per item; prints its figures as JSON
_PLAIN = r'''
import asyncio, json, resource, sys, time
import httpx
url, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    sem = asyncio.Semaphore(k)
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=k, max_keepalive_connections=k)) as c:
        async def one(i):
            async with sem:
                r = await c.post("/chat/completions", json={"model": "fake", "max_tokens": 16,
                                 "messages": [{"role": "user", "content": f"item {i}"}]})
                r.raise_for_status()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - t0
wall = asyncio.run(main())
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "rss_mb": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime}))
'''

#: the CLI in-process, then this process's peak RSS on the last stderr line
_RUNNER = (
    "import resource, sys, runpy\n"
    "sys.argv = ['thoughttrace'] + sys.argv[1:]\n"
    "code = 0\n"
    "try:\n"
    "    runpy.run_module('thoughttrace', run_name='__main__')\n"
    "except SystemExit as e:\n"
    "    code = e.code or 0\n"
    "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('MAXRSS_KB', ru.ru_maxrss, ru.ru_utime + ru.ru_stime, file=sys.stderr, flush=True)\n"
    "sys.exit(code)\n"
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["THOUGHTTRACE_NO_CACHE"] = "1"
    return env


def _server(*options: str) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", *options], stdout=subprocess.PIPE,
                         text=True, env=_env())
    assert p.stdout is not None
    return p, p.stdout.readline().strip()


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/stats", timeout=10) as r:
        return dict(json.loads(r.read()))


def _fresh(dest: Path) -> Path:
    """`dest` and its side files (meta, usage ledger) removed: a label run into an old output would resume."""
    for p in [dest, *dest.parent.glob(dest.name + ".*")]:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    return dest


def _reset(url: str) -> None:
    with urllib.request.urlopen(url + "/reset", timeout=10) as r:
        r.read()


def _label(data: Path, out: Path, fleet: Path, in_flight: int, ray: bool,
           ray_address: str | None = None) -> dict[str, Any]:
    args = [str(data), "--out", str(out), "--model", "openai-compatible/fake", "--base-url", str(fleet),
            "--no-cache", "--kind", "domain", "--batch-size", str(in_flight), "--json"]
    if ray:
        rows = _rows(data)
        shard = min(SHARD_SIZE, -(-rows // 2)) if SHARD_SIZE else max(50, rows // (2 * SHARDS_PER_WORKER))
        args += ["--engine", "ray", "--workers", "2", "--shard-size", str(shard)]
        if ray_address:
            args += ["--ray-address", ray_address]
    t0 = time.perf_counter()
    launched = time.monotonic()
    res = subprocess.run([sys.executable, "-c", _RUNNER, "label", *args], capture_output=True, text=True,
                         env=_env(), timeout=1800)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"label failed: {res.stderr[-2000:]}")
    meta = json.loads(res.stdout)
    last = res.stderr.strip().splitlines()[-1].split()
    rss, cpu = int(last[1]) / 1024, float(last[2])
    usage = meta["usage"]["models"]["openai-compatible/fake"]
    return {"wall_s": wall, "rss_mb": rss, "cpu_s": cpu, "calls": usage["calls"], "launched": launched}


def _client(kind: str, url: str, data: Path, n: int, out: Path, fleet: Path, in_flight: int,
            ray_address: str | None, rep: int) -> dict[str, Any]:
    """One client's run against the reset server: its figures, measured on the server's clock."""
    _reset(url)
    if kind == "plain":
        launched = time.monotonic()
        res = subprocess.run([sys.executable, "-c", _PLAIN, url, str(n), str(in_flight)], capture_output=True,
                             text=True, env=_env(), timeout=1800)
        if res.returncode != 0:
            raise SystemExit(f"plain client failed: {res.stderr[-2000:]}")
        r = {**json.loads(res.stdout), "launched": launched}
    else:
        dest = out / f"{kind}-{n}-{rep}{'' if kind == 'ray' else '.jsonl'}"
        r = _label(data, _fresh(dest), fleet, in_flight, ray=kind == "ray", ray_address=ray_address)
    st = _stats(url)
    busy = float(st["busy_seconds"])
    return {"items_per_s": round(n / busy, 1), "busy_s": round(busy, 3), "wall_s": round(r["wall_s"], 2),
            "start_s": round(float(st["first_at"]) - r.pop("launched"), 2), "rss_mb": round(r["rss_mb"], 1),
            "cpu_ms_per_item": round(1000 * r["cpu_s"] / n, 3), "served": st["completions"],
            "max_in_flight_seen": st["max_in_flight"]}


def _rows(data: Path) -> int:
    with open(data, "rb") as fh:
        return sum(1 for _ in fh)


def _fleet(path: Path, urls: list[str], max_connections: int) -> Path:
    path.write_text("format_version: 1\nendpoints:\n" + "".join(
        f"  - url: {u}\n    max_connections: {max_connections}\n" for u in urls))
    return path


def throughput(out: Path, sizes: list[int], latency_ms: float, in_flight: int, reps: int,
               engines: list[str], ray_address: str | None) -> list[dict[str, Any]]:
    from thoughttrace.data import write_synthetic

    proc, url = _server("--latency-ms", str(latency_ms), "--seed", "1")
    rows: list[dict[str, Any]] = []
    try:
        fleet = _fleet(out / "fleet1.yaml", [url], in_flight)
        for n in sizes:
            data = out / f"convs-{n}.jsonl"
            if not data.exists():
                write_synthetic(data, n, seed=7)
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in ["plain", *engines]}
            for rep in range(reps):
                for kind in runs:
                    runs[kind].append(_client(kind, url, data, n, out, fleet, in_flight, ray_address, rep))
            row: dict[str, Any] = {"items": n, "in_flight": in_flight, "latency_median_ms": latency_ms, "reps": reps,
                                   "load": os.getloadavg()[0], "runs": runs}
            for kind in runs:
                row[kind] = {k: statistics.median(r[k] for r in runs[kind])
                             for k in ("items_per_s", "wall_s", "start_s", "rss_mb", "cpu_ms_per_item")}
            for kind in engines:
                row[f"{kind}_vs_plain"] = round(statistics.median(
                    e["items_per_s"] / p["items_per_s"] for e, p in zip(runs[kind], runs["plain"], strict=True)), 3)
            if "ray" in engines and "local" in engines:
                row["ray_vs_local"] = round(statistics.median(
                    e["items_per_s"] / p["items_per_s"] for e, p in zip(runs["ray"], runs["local"], strict=True)), 3)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
    finally:
        proc.kill()
    return rows


def split(out: Path, n: int, ray_address: str | None = None) -> list[dict[str, Any]]:
    """Share of two equal servers at 1, 4 and 64 in flight, local and Ray (requests each server served)."""
    from thoughttrace.data import write_synthetic

    data = out / f"split-{n}.jsonl"
    if not data.exists():
        write_synthetic(data, n, seed=9)
    rows = []
    for in_flight in (1, 4, 64):
        for ray in (False, True):
            procs = [_server("--latency-ms", "5", "--seed", str(i)) for i in range(2)]
            urls = [u for _, u in procs]
            try:
                fleet = _fleet(out / "fleet2.yaml", urls, max(2, in_flight))
                dest = out / f"split-{in_flight}-{'ray' if ray else 'local'}{'' if ray else '.jsonl'}"
                _label(data, _fresh(dest), fleet, in_flight, ray=ray, ray_address=ray_address)
                served = [_stats(u)["completions"] for u in urls]
            finally:
                for p, _ in procs:
                    p.kill()
            row = {"engine": "ray" if ray else "local", "in_flight": in_flight, "served": served,
                   "share_first": round(served[0] / sum(served), 3), "n": sum(served)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    global SHARDS_PER_WORKER, SHARD_SIZE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("artifacts/batch_scale"))
    ap.add_argument("--sizes", default="200,2000", help="items per throughput run, comma-separated")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="median server latency (p99 = 10x)")
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--split-items", type=int, default=200, help="items per split run (0: skip)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each client per size, in turn")
    ap.add_argument("--engines", default="local,ray", help="which of local,ray to run beside the plain client")
    ap.add_argument("--ray-address", default=None, help="an existing cluster (`ray start --head`); default: a new "
                    "local Ray per run")
    ap.add_argument("--ray-shards-per-worker", type=int, default=4,
                    help="Ray shard size = items / (2 workers x this)")
    ap.add_argument("--ray-shard-size", type=int, default=None,
                    help="a fixed Ray shard size instead (e.g. 1000, the CLI's default; at most half the items)")
    args = ap.parse_args()
    SHARDS_PER_WORKER = max(1, args.ray_shards_per_worker)
    SHARD_SIZE = args.ray_shard_size
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    summary = {"format_version": FORMAT_VERSION, "load_start": os.getloadavg()[0],
               "ray_address": args.ray_address, "ray_shards_per_worker": SHARDS_PER_WORKER,
               "ray_shard_size": SHARD_SIZE,
               "throughput": throughput(args.out, sizes, args.latency_ms, args.in_flight, args.reps,
                                        [e for e in args.engines.split(",") if e], args.ray_address),
               "split": split(args.out, args.split_items, args.ray_address) if args.split_items else [],
               "load_end": os.getloadavg()[0]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\nitems  client  items/s  vs plain  CPU ms/item  RSS MB  start s  wall s   (medians of the reps)")
    for r in summary["throughput"]:
        for kind in ("plain", "local", "ray"):
            if kind in r:
                c = r[kind]
                print(f"{r['items']:>6} {kind:>6} {c['items_per_s']:>8.1f} {r.get(kind + '_vs_plain', 1.0):>9.3f} "
                      f"{c['cpu_ms_per_item']:>12.3f} {c['rss_mb']:>7.0f} {c['start_s']:>8.2f} {c['wall_s']:>7.2f}")
        if "ray_vs_local" in r:
            print(f"{'':>6} ray/local {r['ray_vs_local']:.3f}")
    print("\nengine  in flight  share of the first server (n)")
    for r in summary["split"]:
        print(f"{r['engine']:>6} {r['in_flight']:>10}  {r['share_first']:.3f} ({r['n']})")


if __name__ == "__main__":
    main()
