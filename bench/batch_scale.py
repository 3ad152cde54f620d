"""Batch labelling against heavy-tailed servers: local engine, Ray and a plain asyncio client, side by side.

A fake OpenAI-compatible server (thoughttrace.llm.fakeserver, its own process) answers each request after a
lognormal delay with median `--latency-ms` and p99 ten times that (real servers have such tails). Three
clients send one request per item at the same concurrency `--in-flight`:

- plain: httpx.AsyncClient + asyncio.Semaphore, the same request bodies (the ceiling: no cache, no parsing);
- local: `thoughttrace label --kind domain --batch-size IN_FLIGHT` (a sliding window of calls);
- ray: the same with `--engine ray --workers 2` (a new local Ray each run; the fleet's max_connections =
  IN_FLIGHT is split between the workers, so the server sees the same concurrency).

Each client runs in its own process; items/s is over that process's work (the label meta's wall time for
local, shard seconds for Ray, with Ray's whole wall time beside it), and the driver's peak RSS is its
ru_maxrss. Then the split between two equal servers at 1, 4 and 64 in flight, on both engines (server counts).

    nice -n 10 python bench/batch_scale.py --sizes 200,2000 --out artifacts/batch_scale

Writes OUT/summary.json (format_version 2) and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
FORMAT_VERSION = 2

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
print(json.dumps({"work_s": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
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
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr, flush=True)\n"
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


def _label(data: Path, out: Path, fleet: Path, in_flight: int, ray: bool) -> dict[str, Any]:
    args = [str(data), "--out", str(out), "--model", "openai-compatible/fake", "--base-url", str(fleet),
            "--no-cache", "--kind", "domain", "--batch-size", str(in_flight), "--json"]
    if ray:
        args += ["--engine", "ray", "--workers", "2", "--shard-size", str(max(50, _rows(data) // 8))]
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _RUNNER, "label", *args], capture_output=True, text=True,
                         env=_env(), timeout=1800)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"label failed: {res.stderr[-2000:]}")
    meta = json.loads(res.stdout)
    rss = int(res.stderr.strip().splitlines()[-1].split()[-1]) / 1024
    usage = meta["usage"]["models"]["openai-compatible/fake"]
    if ray:
        shard_s = [json.loads(p.read_text())["seconds"] for p in (out / "shards").glob("*.done.json")]
        work = sum(shard_s) / 2  # two workers side by side
    else:
        work = float(usage["wall_seconds"])
    return {"work_s": work, "wall_s": wall, "rss_mb": rss, "calls": usage["calls"]}


def _rows(data: Path) -> int:
    with open(data, "rb") as fh:
        return sum(1 for _ in fh)


def _fleet(path: Path, urls: list[str], max_connections: int) -> Path:
    path.write_text("format_version: 1\nendpoints:\n" + "".join(
        f"  - url: {u}\n    max_connections: {max_connections}\n" for u in urls))
    return path


def throughput(out: Path, sizes: list[int], latency_ms: float, in_flight: int) -> list[dict[str, Any]]:
    from thoughttrace.data import write_synthetic

    proc, url = _server("--latency-ms", str(latency_ms), "--seed", "1")
    rows: list[dict[str, Any]] = []
    try:
        fleet = _fleet(out / "fleet1.yaml", [url], in_flight)
        for n in sizes:
            data = out / f"convs-{n}.jsonl"
            if not data.exists():
                write_synthetic(data, n, seed=7)
            res = subprocess.run([sys.executable, "-c", _PLAIN, url, str(n), str(in_flight)], capture_output=True,
                                 text=True, env=_env(), timeout=1800)
            plain = json.loads(res.stdout)
            local = _label(data, out / f"local-{n}.jsonl", fleet, in_flight, ray=False)
            ray = _label(data, out / f"ray-{n}", fleet, in_flight, ray=True)
            row = {"items": n, "in_flight": in_flight, "latency_median_ms": latency_ms,
                   "max_in_flight_seen": _stats(url)["max_in_flight"]}
            for name, r in (("plain", plain), ("local", local), ("ray", ray)):
                row[name] = {**r, "items_per_s": round(n / r["work_s"], 1)}
            row["local_vs_plain"] = round(row["local"]["items_per_s"] / row["plain"]["items_per_s"], 3)
            row["ray_vs_plain"] = round(row["ray"]["items_per_s"] / row["plain"]["items_per_s"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        proc.kill()
    return rows


def split(out: Path, n: int) -> list[dict[str, Any]]:
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
                _label(data, out / f"split-{in_flight}-{'ray' if ray else 'local'}{'' if ray else '.jsonl'}",
                       fleet, in_flight, ray=ray)
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("artifacts/batch_scale"))
    ap.add_argument("--sizes", default="200,2000", help="items per throughput run, comma-separated")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="median server latency (p99 = 10x)")
    ap.add_argument("--in-flight", type=int, default=16)
    ap.add_argument("--split-items", type=int, default=200, help="items per split run (0: skip)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    summary = {"format_version": FORMAT_VERSION, "load_start": os.getloadavg()[0],
               "throughput": throughput(args.out, sizes, args.latency_ms, args.in_flight),
               "split": split(args.out, args.split_items) if args.split_items else [],
               "load_end": os.getloadavg()[0]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\nitems  plain/s  local/s  ray/s  local/plain  ray/plain  RSS MB plain/local/ray  ray wall s")
    for r in summary["throughput"]:
        print(f"{r['items']:>6} {r['plain']['items_per_s']:>8} {r['local']['items_per_s']:>8} "
              f"{r['ray']['items_per_s']:>6} {r['local_vs_plain']:>12} {r['ray_vs_plain']:>10}  "
              f"{r['plain']['rss_mb']:.0f}/{r['local']['rss_mb']:.0f}/{r['ray']['rss_mb']:.0f}"
              f"{r['ray']['wall_s']:>12.1f}")
    print("\nengine  in flight  share of the first server (n)")
    for r in summary["split"]:
        print(f"{r['engine']:>6} {r['in_flight']:>10}  {r['share_first']:.3f} ({r['n']})")


if __name__ == "__main__":
    main()
