"""Batch labelling at scale: Ray Data (2 local workers) vs the local engine, and driver memory vs input size.

A pool of two fast fake OpenAI-compatible servers (thoughttrace.llm.fakeserver, separate processes) stands in
for a model fleet, so the figures measure the engines, not a model. Each run is the real CLI
(`thoughttrace label --kind domain`, one item per conversation, no response cache) in its own process; the
driver's peak RSS is that process's ru_maxrss (Ray workers are other processes).

    nice -n 10 python bench/batch_scale.py --out artifacts/batch_scale [--n 100000] [--sizes 250000,1000000]

Writes OUT/summary.json (format_version 1) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
#: runs the CLI in-process, then reports this process's peak RSS (kB on Linux) on the last stderr line
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
    return env


def start_servers(n: int) -> tuple[list[subprocess.Popen[str]], str]:
    procs, urls = [], []
    for i in range(n):
        p = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--name", f"s{i}"],
                             stdout=subprocess.PIPE, text=True, env=_env())
        assert p.stdout is not None
        urls.append(p.stdout.readline().strip())
        procs.append(p)
    return procs, ",".join(urls)


def make_data(path: Path, n: int) -> Path:
    if not path.exists():
        sys.path.insert(0, str(SRC))
        from thoughttrace.data import write_synthetic

        t = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        write_synthetic(tmp, n, seed=7, length_range=(2, 6))
        tmp.rename(path)
        print(f"wrote {n} conversations to {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path


def run_label(data: Path, out: Path, pool: str, engine: str, workers: int, shard_size: int,
              log: Path) -> dict[str, Any]:
    args = ["label", str(data), "--out", str(out), "--kind", "domain", "--model", "openai-compatible/fake", "--base-url",
            pool, "--no-cache", "--batch-size", "256", "--json"]
    if engine == "ray":
        args += ["--engine", "ray", "--workers", str(workers), "--shard-size", str(shard_size)]
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _RUNNER, *args], capture_output=True, text=True, env=_env())
    wall = time.perf_counter() - t
    log.write_text(done.stderr[-20000:], encoding="utf-8")
    if done.returncode != 0:
        raise RuntimeError(f"{engine} run failed (see {log}): {done.stderr[-2000:]}")
    maxrss = next(int(ln.split()[1]) for ln in reversed(done.stderr.splitlines()) if ln.startswith("MAXRSS_KB"))
    meta = json.loads(done.stdout)
    items = int(meta["summary"]["items"])
    usage = meta["usage"]["models"]["openai-compatible/fake"]
    return {"engine": engine, "items": items, "wall_s": round(wall, 1), "items_per_s": round(items / wall, 1),
            "driver_peak_rss_mb": round(maxrss / 1024, 1), "calls": usage["calls"],
            "by_endpoint_requests": {u: e["requests"] for u, e in usage.get("by_endpoint", {}).items()}}


def same_labels(local: Path, ray_dir: Path) -> dict[str, Any]:
    """Compare the two outputs record by record, streaming both (input order on both sides)."""
    sys.path.insert(0, str(SRC))
    from thoughttrace.batch import iter_records

    n = diff = 0
    with open(local, encoding="utf-8") as fh:
        for line, rec in zip(fh, iter_records(ray_dir), strict=True):
            n += 1
            diff += json.loads(line) != rec
    return {"records_compared": n, "records_different": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("artifacts/batch_scale"))
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--sizes", default="250000,1000000", help="input sizes for the driver-memory check (Ray)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=5000)
    ap.add_argument("--servers", type=int, default=2)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    procs, pool = start_servers(args.servers)
    summary: dict[str, Any] = {"format_version": 1, "pool": pool.split(","), "workers": args.workers,
                               "shard_size": args.shard_size, "cpus": os.cpu_count(), "runs": {}}
    try:
        data = make_data(out / f"convs_{args.n}.jsonl", args.n)
        for engine in ("local", "ray"):
            target = out / (f"local_{args.n}.jsonl" if engine == "local" else f"ray_{args.n}")
            _clean(target)
            summary["runs"][f"{engine}_{args.n}"] = r = run_label(data, target, pool, engine, args.workers,
                                                                  args.shard_size, out / f"{engine}_{args.n}.log")
            print(json.dumps(r), file=sys.stderr, flush=True)
        summary["equal_outputs"] = same_labels(out / f"local_{args.n}.jsonl", out / f"ray_{args.n}")
        lr, rr = summary["runs"][f"local_{args.n}"], summary["runs"][f"ray_{args.n}"]
        summary["throughput_ratio_ray_over_local"] = round(rr["items_per_s"] / lr["items_per_s"], 3)
        _write(out, summary)
        mem: dict[str, Any] = {}
        for size in [int(s) for s in args.sizes.split(",") if s]:
            data = make_data(out / f"convs_{size}.jsonl", size)
            target = out / f"ray_memory_{size}"
            _clean(target)
            r = run_label(data, target, pool, "ray", args.workers, args.shard_size, out / f"ray_memory_{size}.log")
            summary["runs"][f"ray_memory_{size}"] = r
            mem[str(size)] = r["driver_peak_rss_mb"]
            print(json.dumps(r), file=sys.stderr, flush=True)
            _write(out, summary)
        if len(mem) >= 2:
            sizes = sorted(mem, key=int)
            summary["driver_peak_rss_mb_by_input_rows"] = mem
            summary["driver_peak_growth_mb"] = round(mem[sizes[-1]] - mem[sizes[0]], 1)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    _write(out, summary)
    print(json.dumps(summary, indent=2))


def _clean(target: Path) -> None:
    import shutil

    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    meta = Path(str(target) + ".meta.json")
    if meta.exists():
        meta.unlink()


def _write(out: Path, summary: dict[str, Any]) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
