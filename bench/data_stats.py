"""`data stats` side by side with a bare stdlib loop, polars and duckdb computing the same figures.

    python bench/data_stats.py --n 20000        # the short run (about a minute of CPU on 2 cores)
    python bench/data_stats.py                  # 100,000 synthetic conversations (generated once, cached)
    python bench/data_stats.py --skip-others    # only ours and the bare loop

CPU time, not wall time: the machines these run on are shared, and CPU seconds (user + system, every
thread of the process: polars and duckdb use several) are what a run costs whatever else is running.
Each measurement runs in its own fresh Python subprocess, `--repeat` times (the least CPU time is kept:
noise only ever adds), so peak resident memory (getrusage ru_maxrss) is its own. Imports are excluded.

What each row does with the same file:
- ours, `data stats` (thoughttrace.data.stats.stats_file): validates EVERY line against the schema (the
  msgspec fast path of thoughttrace.data.fast, pydantic for a line it cannot accept) and computes every
  figure of `thoughttrace data stats`.
- ours, pydantic only: the same figures through pydantic models (`iter_conversations`), the old path.
- bare stdlib loop: `json.loads` per line and the same figures from the dicts; NO validation.
- polars `read_ndjson`, duckdb `read_json`: the same figures with their expressions / SQL; no validation.
The figures of every row are checked equal to ours before anything is printed. The speed ratio the
issue asks for is (bare loop CPU s) / (ours CPU s): ours is at least 0.8x the bare loop's speed when
it is >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


def _rss_now_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


def _user_key(user_id: Any, conv_id: str) -> str:
    if user_id:
        return str(user_id)
    head = conv_id.split("_", 1)[0]
    return head if head.startswith("user") else conv_id


def _median(lengths: Counter[int]) -> float:
    values = sorted(lengths.elements())
    n = len(values)
    return 0.0 if n == 0 else (values[(n - 1) // 2] + values[n // 2]) / 2


def _figures(lengths: Counter[int], user: int, asst: int, reasons: Counter[str], reactions: Counter[str],
             unl_reasons: int, unl_reactions: int, models: Counter[str], domains: Counter[str], no_domain: int,
             users: int) -> dict[str, Any]:
    """The figures every row must agree on (label tables without their zero rows)."""
    n = sum(lengths.values())
    return {"conversations": n, "messages": user + asst, "user_messages": user, "assistant_messages": asst,
            "median": _median(lengths), "min": min(lengths) if n else 0, "max": max(lengths) if n else 0,
            "reasons": dict(sorted((k, v) for k, v in reasons.items() if v)),
            "reactions": dict(sorted((k, v) for k, v in reactions.items() if v)),
            "unlabeled_reasons": unl_reasons, "unlabeled_reactions": unl_reactions,
            "models": dict(sorted(models.items())), "domains": dict(sorted((k, v) for k, v in domains.items() if v)),
            "no_domain": no_domain, "users": users}


def _ours_figures(st: Any) -> dict[str, Any]:
    return {"conversations": st.conversations, "messages": st.messages, "user_messages": st.user_messages,
            "assistant_messages": st.assistant_messages, "median": st.median_messages_per_conversation,
            "min": st.min_messages_per_conversation, "max": st.max_messages_per_conversation,
            "reasons": dict(sorted((k, v.count) for k, v in st.reason_labels.items() if v.count)),
            "reactions": dict(sorted((k, v.count) for k, v in st.reaction_labels.items() if v.count)),
            "unlabeled_reasons": st.unlabeled_reasons, "unlabeled_reactions": st.unlabeled_reactions,
            "models": dict(sorted(st.model_counts.items())),
            "domains": dict(sorted((k, v.count) for k, v in st.domains.items() if v.count)),
            "no_domain": st.conversations_without_domain, "users": st.users}


def bare_loop(path: str) -> dict[str, Any]:
    """The same figures with the standard library only: json.loads and counters, no validation."""
    loads = json.loads
    lengths: Counter[int] = Counter()
    reasons: Counter[str] = Counter()
    reactions: Counter[str] = Counter()
    models: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    users: set[str] = set()
    user = asst = unl_r = unl_a = no_domain = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            c = loads(line)
            msgs = c["messages"]
            lengths[len(msgs)] += 1
            for m in msgs:
                if m["type"] == "user":
                    user += 1
                    for t in m.get("reasons") or ():
                        if t.get("label"):
                            reasons[t["label"]] += 1
                        else:
                            unl_r += 1
                else:
                    asst += 1
                    for t in m.get("reactions") or ():
                        if t.get("label"):
                            reactions[t["label"]] += 1
                        else:
                            unl_a += 1
            if c.get("model_name"):
                models[c["model_name"]] += 1
            if c.get("domain"):
                domains[c["domain"]] += 1
            else:
                no_domain += 1
            users.add(_user_key(c.get("user_id"), c["id"]))
    return _figures(lengths, user, asst, reasons, reactions, unl_r, unl_a, models, domains, no_domain, len(users))


def polars_figures(path: str) -> dict[str, Any]:
    import polars as pl

    df = pl.read_ndjson(path)
    conv = df.select(pl.col("messages").list.len().alias("n"), "model_name", "domain", "user_id", "id")
    lengths = Counter(dict(conv.group_by("n").len().iter_rows()))
    msgs = df.select("messages").explode("messages").unnest("messages")
    user = int((msgs["type"] == "user").sum())
    asst = int((msgs["type"] == "assistant").sum())

    def labels(col: str) -> tuple[Counter[str], int]:
        t = msgs.select(col).explode(col).drop_nulls().unnest(col)
        unl = int(t.select((pl.col("label").is_null() | (pl.col("label") == "")).sum()).item())
        counts = t.filter(pl.col("label").is_not_null() & (pl.col("label") != "")).group_by("label").len()
        return Counter(dict(counts.iter_rows())), unl

    reasons, unl_r = labels("reasons")
    reactions, unl_a = labels("reactions")
    models = Counter(dict(conv.filter(pl.col("model_name").is_not_null() & (pl.col("model_name") != ""))
                          .group_by("model_name").len().iter_rows()))
    has_domain = pl.col("domain").is_not_null() & (pl.col("domain") != "")
    domains = Counter(dict(conv.filter(has_domain).group_by("domain").len().iter_rows()))
    no_domain = int(conv.select((~has_domain).sum()).item())
    head = pl.col("id").str.split("_").list.first()
    key = (pl.when(pl.col("user_id").is_not_null() & (pl.col("user_id") != "")).then(pl.col("user_id"))
           .when(head.str.starts_with("user")).then(head).otherwise(pl.col("id")))
    users = int(conv.select(key.n_unique()).item())
    return _figures(lengths, user, asst, reasons, reactions, unl_r, unl_a, models, domains, no_domain, users)


def duckdb_figures(path: str) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"CREATE TABLE c AS SELECT * FROM read_json('{path}', format='newline_delimited')")
    lengths = Counter(dict(con.execute("SELECT len(messages), count(*) FROM c GROUP BY 1").fetchall()))
    con.execute("CREATE TABLE m AS SELECT unnest(messages, recursive := false) AS m FROM c")
    by_type = dict(con.execute("SELECT m.type, count(*) FROM m GROUP BY 1").fetchall())

    def labels(col: str) -> tuple[Counter[str], int]:
        rows = con.execute(f"SELECT t.label, count(*) FROM (SELECT unnest(m.{col}) AS t FROM m) GROUP BY 1").fetchall()
        counts = Counter({k: v for k, v in rows if k})
        return counts, sum(v for k, v in rows if not k)

    reasons, unl_r = labels("reasons")
    reactions, unl_a = labels("reactions")
    models = Counter(dict(con.execute("SELECT model_name, count(*) FROM c WHERE coalesce(model_name, '') <> '' "
                                      "GROUP BY 1").fetchall()))
    domains = Counter(dict(con.execute("SELECT domain, count(*) FROM c WHERE coalesce(domain, '') <> '' "
                                       "GROUP BY 1").fetchall()))
    no_domain = con.execute("SELECT count(*) FROM c WHERE coalesce(domain, '') = ''").fetchone()[0]  # type: ignore[index]
    users = con.execute("SELECT count(DISTINCT CASE WHEN coalesce(user_id, '') <> '' THEN user_id "
                        "WHEN split_part(id, '_', 1) LIKE 'user%' THEN split_part(id, '_', 1) ELSE id END) "
                        "FROM c").fetchone()[0]  # type: ignore[index]
    return _figures(lengths, by_type.get("user", 0), by_type.get("assistant", 0), reasons, reactions, unl_r, unl_a,
                    models, domains, no_domain, users)


def worker(kind: str, path: str) -> None:
    """Run one measurement and print it as JSON (in a fresh subprocess)."""
    if kind == "ours":
        from thoughttrace.data.stats import stats_file

        def work() -> dict[str, Any]:
            return _ours_figures(stats_file(path, skip_invalid=True)[0])
    elif kind == "ours-pydantic":
        from thoughttrace.data.io import ReadReport, iter_conversations
        from thoughttrace.data.stats import compute_stats

        def work() -> dict[str, Any]:
            return _ours_figures(compute_stats(iter_conversations(path, skip_invalid=True, report=ReadReport())))
    elif kind == "validate":
        from thoughttrace.data.io import validate_file

        def work() -> dict[str, Any]:
            return {"conversations": validate_file(path).valid}
    elif kind == "bare":
        def work() -> dict[str, Any]:
            return bare_loop(path)
    elif kind == "polars":
        import polars  # noqa: F401  (imported before the clock starts)

        def work() -> dict[str, Any]:
            return polars_figures(path)
    elif kind == "duckdb":
        import duckdb  # noqa: F401

        def work() -> dict[str, Any]:
            return duckdb_figures(path)
    elif kind == "pandas":
        import pandas as pd

        def work() -> dict[str, Any]:
            return {"conversations": len(pd.read_json(path, lines=True))}
    else:
        raise SystemExit(f"unknown worker {kind}")
    import_rss = _rss_now_mb()
    c0, t0 = _cpu(), time.perf_counter()
    figures = work()
    cpu, wall = _cpu() - c0, time.perf_counter() - t0
    print(json.dumps({"kind": kind, "cpu_seconds": cpu, "wall_seconds": wall, "peak_rss_mb": _peak_mb(),
                      "import_rss_mb": import_rss, "figures": figures}))


def measure(kind: str, path: Path, repeat: int) -> dict[str, Any]:
    """The run with the least CPU time of `repeat` fresh subprocesses (peak memory: the largest seen)."""
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, __file__, "--worker", kind, str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["cpu_seconds"])
    return {**best, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "cpu_all": [round(r["cpu_seconds"], 3) for r in runs]}


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
    ap.add_argument("--n", type=int, default=100_000, help="conversations in the generated file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="fresh subprocesses per row; the least CPU time is kept")
    ap.add_argument("--cache-dir", type=Path,
                    default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "thoughttrace" / "bench")
    ap.add_argument("--skip-others", action="store_true", help="no polars/duckdb rows (only ours and the bare loop)")
    ap.add_argument("--with-pandas", action="store_true", help="add pandas.read_json(lines=True) (parse only)")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    full, quarter = ensure_files(args.n, args.seed, args.cache_dir)
    size_mb = full.stat().st_size / 2**20
    print(f"file: {full} ({args.n:,} conversations, {size_mb:,.0f} MiB); quarter: {args.n // 4:,}; "
          f"best of {args.repeat} runs each")
    rows = [("ours: data stats (validates)", measure("ours", full, args.repeat)),
            ("ours: data stats (n/4)", measure("ours", quarter, args.repeat)),
            ("ours: pydantic only (old path)", measure("ours-pydantic", full, args.repeat)),
            ("ours: data validate", measure("validate", full, args.repeat)),
            ("bare stdlib loop (no validation)", measure("bare", full, args.repeat))]
    if not args.skip_others:
        rows += [("polars read_ndjson + exprs", measure("polars", full, args.repeat)),
                 ("duckdb read_json + SQL", measure("duckdb", full, args.repeat))]
    if args.with_pandas:
        rows.append(("pandas read_json (parse only)", measure("pandas", full, args.repeat)))
    ours, bare = rows[0][1], rows[4][1]
    for name, r in rows:
        if r["kind"] in ("ours-pydantic", "bare", "polars", "duckdb") and r["figures"] != ours["figures"]:
            diff = {k: (ours["figures"][k], r["figures"].get(k)) for k in ours["figures"]
                    if ours["figures"][k] != r["figures"].get(k)}
            raise SystemExit(f"{name}: figures differ from ours: {diff}")
    print()
    print(f"{'run':<34} {'CPU s':>7} {'wall s':>7} {'conv/CPU s':>11} {'vs bare':>8} {'peak RSS MiB':>13}")
    bare_rate = bare["figures"]["conversations"] / bare["cpu_seconds"]
    for name, r in rows:
        n = r["figures"]["conversations"]
        # "vs bare": conversations per CPU second against the bare loop's (fair for the n/4 row too)
        print(f"{name:<34} {r['cpu_seconds']:>7.2f} {r['wall_seconds']:>7.2f} {n / r['cpu_seconds']:>11,.0f} "
              f"{n / r['cpu_seconds'] / bare_rate:>7.2f}x {r['peak_rss_mb']:>13,.0f}")
    print()
    ratio = bare["cpu_seconds"] / ours["cpu_seconds"]
    print(f"ours vs the bare stdlib loop, CPU speed: {ratio:.2f}x ({'meets' if ratio >= 0.8 else 'misses'} >= 0.8x); "
          f"CPU s of each run: ours {ours['cpu_all']}, bare {bare['cpu_all']}")
    print(f"every row's figures equal ours: {ours['figures']['conversations']:,} conversations, "
          f"{ours['figures']['messages']:,} messages, {ours['figures']['users']:,} users")
    print(f"ours, peak RSS at n vs n/4: {ours['peak_rss_mb']:.0f} vs {rows[1][1]['peak_rss_mb']:.0f} MiB "
          "(streaming: the exact distinct-user set is all that grows)")


if __name__ == "__main__":
    main()
