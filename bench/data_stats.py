"""Streaming `validate`+`stats` vs `pandas.read_json(lines=True)` on the same generated file.

    python bench/data_stats.py            # 200,000 synthetic conversations (generated once, then cached)
    python bench/data_stats.py --n 20000  # quicker

Each measurement runs in its own fresh Python subprocess, so its peak resident memory (getrusage
ru_maxrss) is its own and not inflated by an earlier one. Time is the work only (imports excluded);
"import RSS" is the process's memory after imports, before reading. Ours runs on the file and on its
first quarter: a streaming reader must show (nearly) the same peak for both.

What each side does: ours parses AND validates every line against the schema (pydantic) and computes
every figure of `thoughttrace data stats`; pandas only parses the file into a DataFrame (no validation,
no figures), so the comparison is generous to pandas.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _rss_now_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(kind: str, path: str) -> None:
    """Run one measurement and print it as JSON (in a fresh subprocess)."""
    if kind == "ours":
        from thoughttrace.data.io import ReadReport, iter_conversations
        from thoughttrace.data.stats import compute_stats

        import_rss = _rss_now_mb()
        t0 = time.perf_counter()
        report = ReadReport()
        stats = compute_stats(iter_conversations(path, skip_invalid=True, report=report))
        seconds = time.perf_counter() - t0
        result = {"conversations": stats.conversations, "messages": stats.messages, "bad_lines": len(report.errors)}
    elif kind == "validate":
        from thoughttrace.data.io import validate_file

        import_rss = _rss_now_mb()
        t0 = time.perf_counter()
        report = validate_file(path)
        seconds = time.perf_counter() - t0
        result = {"conversations": report.valid, "bad_lines": len(report.errors)}
    elif kind == "pandas":
        import pandas as pd

        import_rss = _rss_now_mb()
        t0 = time.perf_counter()
        df = pd.read_json(path, lines=True)
        seconds = time.perf_counter() - t0
        result = {"conversations": len(df)}
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_rss_mb": _peak_mb(), "import_rss_mb": import_rss,
                      **result}))


def measure(kind: str, path: Path) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def ensure_files(n: int, seed: int, cache_dir: Path) -> tuple[Path, Path]:
    """The n-conversation file and its first quarter, generated once per (n, seed) and cached."""
    from thoughttrace.data.schema import FORMAT_VERSION
    from thoughttrace.data.synthetic import write_synthetic

    cache_dir.mkdir(parents=True, exist_ok=True)
    full = cache_dir / f"synthetic-n{n}-seed{seed}-v{FORMAT_VERSION}.jsonl"
    quarter = cache_dir / f"synthetic-n{n}-seed{seed}-v{FORMAT_VERSION}-quarter.jsonl"
    if not full.exists():
        print(f"generating {n:,} conversations into {full} (once; cached for reruns) ...", file=sys.stderr)
        t0 = time.perf_counter()
        write_synthetic(full, n, seed)
        print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not quarter.exists():
        tmp = quarter.with_name(quarter.name + ".tmp")
        with open(full, "rb") as src, open(tmp, "wb") as dst:
            for i, line in enumerate(src):
                if i >= n // 4:
                    break
                dst.write(line)
        tmp.replace(quarter)
    return full, quarter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200_000, help="conversations in the generated file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "thoughttrace" / "bench")
    ap.add_argument("--skip-pandas", action="store_true", help="only measure ours (pandas needs a lot of memory)")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    full, quarter = ensure_files(args.n, args.seed, args.cache_dir)
    size_mb = full.stat().st_size / 2**20
    print(f"file: {full} ({args.n:,} conversations, {size_mb:,.0f} MiB); quarter: {args.n // 4:,}")
    ours = measure("ours", full)
    ours_q = measure("ours", quarter)
    val = measure("validate", full)
    val_q = measure("validate", quarter)
    pandas = None if args.skip_pandas else measure("pandas", full)
    if pandas is not None and pandas["conversations"] != ours["conversations"]:
        raise SystemExit(f"row counts differ: pandas {pandas['conversations']} vs ours {ours['conversations']}")

    rows = [("ours: validate+stats (n)", ours), ("ours: validate+stats (n/4)", ours_q),
            ("ours: validate only (n)", val), ("ours: validate only (n/4)", val_q)]
    if pandas is not None:
        rows.append(("pandas.read_json(lines=True) (n)", pandas))
    print()
    print(f"{'run':<34} {'seconds':>9} {'conv/s':>10} {'peak RSS MiB':>13} {'import RSS MiB':>15}")
    for name, r in rows:
        n = r["conversations"]
        print(f"{name:<34} {r['seconds']:>9.2f} {n / r['seconds']:>10,.0f} {r['peak_rss_mb']:>13,.0f} "
              f"{r['import_rss_mb']:>15,.0f}")
    print()
    if pandas is not None:
        print(f"time ratio pandas/ours: {pandas['seconds'] / ours['seconds']:.2f}x (ours is faster when > 1)")
        print(f"peak memory ratio pandas/ours: {pandas['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x")
    growth = ours["peak_rss_mb"] - ours_q["peak_rss_mb"]
    print(f"ours, peak RSS at n vs n/4: {ours['peak_rss_mb']:.0f} vs {ours_q['peak_rss_mb']:.0f} MiB "
          f"(+{growth:.0f} MiB for 4x the file: the exact distinct-user set is all that grows)")
    print(f"ours, validate only, peak RSS at n vs n/4: {val['peak_rss_mb']:.0f} vs {val_q['peak_rss_mb']:.0f} MiB")
    print(f"bad lines found by ours: {ours['bad_lines']}; messages: {ours['messages']:,}")


if __name__ == "__main__":
    main()
