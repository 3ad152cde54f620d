"""Batch labelling at scale: Ray Data (2 local workers) vs the local engine, and driver memory vs input size.

A pool of two fast fake OpenAI-compatible servers (thoughttrace.llm.fakeserver, separate processes) stands in
for a model fleet, so the figures measure the engines, not a model. Each run is the real CLI
(`thoughttrace label --kind domain`, one item per conversation) in its own process; the driver's peak RSS is
that process's ru_maxrss (Ray workers are other processes).

Two parts, each its own invocation (so each fits one quiet slot):

- throughput (`--n 100000 --sizes ''`): N synthetic conversations (`write_synthetic`), no response cache, so
  every row is one request to the pool; local engine, then Ray, in the same invocation; outputs compared
  record by record. With `--throughput-cache` each engine gets its own fresh response cache instead, as a
  user would run it: a synthetic prompt seen before is a cache hit (the request count is in the summary).
  httpx costs ~2-3 ms of CPU per request, so 100k requests per engine do not fit one quiet slot on 2 cores.
- driver memory (`--n 0 --sizes 250000,1000000`): inputs of 250k and 1M rows made by repeating a 10k-row
  synthetic base with fresh conversation ids (writing 1M conversations with `write_synthetic` takes ~10 min
  here). The response cache is filled first by labelling the base once (not measured); in the measured runs
  the workers then answer every row from that shared SQLite cache instead of the endpoint (a request per
  row does not fit the time on 2 cores). The driver still runs the whole job: plans every shard, hands
  each out, collects every done marker and writes the manifest; the workers read, parse, prompt, look up
  and write every one of the rows.

    nice -n 10 python bench/batch_scale.py --out artifacts/batch_scale --n 100000 --sizes ''
    nice -n 10 python bench/batch_scale.py --out artifacts/batch_scale --n 0 --sizes 250000,1000000

Writes OUT/summary.json (format_version 1; a later part adds to it) and prints it.
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


def make_repeated(path: Path, base: Path, n: int) -> Path:
    """`n` rows: the base file's conversations over and over, each repetition with fresh conversation ids."""
    if path.exists():
        return path
    t = time.perf_counter()
    templates = []
    with open(base, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                cid = row["id"]
                row["id"] = "\x00"
                head, tail = json.dumps(row, ensure_ascii=False).split('"\\u0000"', 1)
                templates.append((head, tail, cid))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for i in range(n):
            head, tail, cid = templates[i % len(templates)]
            out.write(f'{head}"{cid}-r{i // len(templates)}"{tail}\n')
    tmp.rename(path)
    print(f"wrote {n} rows ({len(templates)}-row base repeated) to {path} in {time.perf_counter() - t:.0f} s",
          file=sys.stderr)
    return path


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
              log: Path, cache: Path | None = None) -> dict[str, Any]:
    args = ["label", str(data), "--out", str(out), "--kind", "domain", "--model", "openai-compatible/fake", "--base-url",
            pool, "--batch-size", "256", "--json", *(["--cache", str(cache)] if cache else ["--no-cache"])]
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
            "driver_peak_rss_mb": round(maxrss / 1024, 1), "calls": usage["calls"], "cache_hits": usage["cache_hits"],
            "shards": meta.get("shards"),
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
    ap.add_argument("--n", type=int, default=100_000, help="conversations for the throughput part (0: skip it)")
    ap.add_argument("--sizes", default="250000,1000000", help="input rows for the driver-memory part ('' skips it)")
    ap.add_argument("--base", type=int, default=10_000, help="distinct conversations repeated for the memory part")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=5000)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--throughput-cache", action="store_true",
                    help="throughput part with a fresh response cache per engine (repeated prompts become cache "
                         "hits) instead of --no-cache (every row a request)")
    ap.add_argument("--prepare-only", action="store_true", help="write the inputs and stop (run this outside the "
                    "quiet slot: writing inputs is not what is measured)")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    # inputs first (not timed)
    data = make_data(out / f"convs_{args.n}.jsonl", args.n) if args.n else None
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if sizes:
        base = make_data(out / f"convs_{args.base}.jsonl", args.base)
        inputs = {size: make_repeated(out / f"rows_{size}.jsonl", base, size) for size in sizes}
    if args.prepare_only:
        return
    procs, pool = start_servers(args.servers)
    old = out / "summary.json"
    summary: dict[str, Any] = json.loads(old.read_text("utf-8")) if old.exists() else {"format_version": 1, "runs": {}}
    summary.update({"pool_size": args.servers, "workers": args.workers, "shard_size": args.shard_size,
                    "cpus": os.cpu_count()})
    try:
        if data is not None:
            for engine in ("local", "ray"):
                target = out / (f"local_{args.n}.jsonl" if engine == "local" else f"ray_{args.n}")
                _clean(target)
                cache = None
                if args.throughput_cache:  # each engine its own fresh cache: the same calls and hits for both
                    cache = out / f"cache_{engine}_{args.n}.sqlite"
                    for extra in ("", "-wal", "-shm"):
                        Path(str(cache) + extra).unlink(missing_ok=True)
                summary["runs"][f"{engine}_{args.n}"] = r = run_label(data, target, pool, engine, args.workers,
                                                                      args.shard_size, out / f"{engine}_{args.n}.log",
                                                                      cache=cache)
                print(json.dumps(r), file=sys.stderr, flush=True)
            summary["equal_outputs"] = same_labels(out / f"local_{args.n}.jsonl", out / f"ray_{args.n}")
            lr, rr = summary["runs"][f"local_{args.n}"], summary["runs"][f"ray_{args.n}"]
            summary["throughput_ratio_ray_over_local"] = round(rr["items_per_s"] / lr["items_per_s"], 3)
            _write(out, summary)
        if sizes:
            cache = out / "memory_cache.sqlite"
            fill = out / "fill_cache"
            _clean(fill)
            summary["runs"]["fill_cache"] = run_label(base, fill, pool, "ray", args.workers, args.shard_size,
                                                      out / "fill_cache.log", cache=cache)
            mem: dict[str, Any] = dict(summary.get("driver_peak_rss_mb_by_input_rows", {}))  # earlier parts too
            for size in sizes:
                target = out / f"ray_memory_{size}"
                _clean(target)
                r = run_label(inputs[size], target, pool, "ray", args.workers, args.shard_size,
                              out / f"ray_memory_{size}.log", cache=cache)
                summary["runs"][f"ray_memory_{size}"] = r
                mem[str(size)] = r["driver_peak_rss_mb"]
                summary["driver_peak_rss_mb_by_input_rows"] = mem
                print(json.dumps(r), file=sys.stderr, flush=True)
                _write(out, summary)
            if len(mem) >= 2:
                ordered = sorted(mem, key=int)
                summary["driver_peak_growth_mb"] = round(mem[ordered[-1]] - mem[ordered[0]], 1)
            summary["memory_route"] = (f"{args.base}-row synthetic base repeated with fresh ids; response cache "
                                       "filled from the base first, so workers answer rows from the cache")
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
