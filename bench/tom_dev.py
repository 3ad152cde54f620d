"""ToM dev-split benchmark: direct, simtom and autotom on a stratified sample of every benchmark.

    python bench/tom_dev.py [--limit 4] [--model local] [--methods direct,simtom,autotom] [--out DIR]

Prints a table of accuracy, calls, tokens and seconds per question per method (overall and per
benchmark) and writes it as JSON. Resumable: results.jsonl per method are kept and every model call is
cached, so a rerun only pays for what is missing. Tiny local models are near chance; the figures show the
harness and the cost per question (AutoToM's reference implementation: ~28 calls per BigToM question).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from thoughttrace.llm import get_model
from thoughttrace.tom.benchmarks import BENCHMARKS, load_uniform
from thoughttrace.tom.harness import run_bench
from thoughttrace.tom.items import select
from thoughttrace.tom.methods import get_method

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TOM = Path(os.environ.get("THOUGHTTRACE_SHARED", REPO.parent / "shared")) / "data" / "tom"
REFERENCE_CALLS_BIGTOM = 28  # measured on the reference implementation (issue 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--limit", type=int, default=4, help="dev items per benchmark, stratified by question type")
    ap.add_argument("--model", default="local", help="model string (default: the embedded Qwen2.5 0.5B)")
    ap.add_argument("--methods", default="direct,simtom,autotom")
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--tom-dir", type=Path, default=DEFAULT_TOM)
    ap.add_argument("--out", type=Path, default=REPO / "artifacts" / "tom_dev")
    ap.add_argument("--concurrency", type=int, default=1)
    args = ap.parse_args(argv)

    items = []
    for bench in args.benchmarks.split(","):
        items += select(load_uniform(args.tom_dir, bench), split="dev", limit=args.limit)
    model = get_model(args.model)
    table: dict[str, dict] = {}
    for name in args.methods.split(","):
        started = time.perf_counter()
        summary = model.run(run_bench(items, get_method(name), model, args.out / name.replace(":", "_"),
                                      concurrency=args.concurrency))
        table[name] = {"summary": summary, "wall_seconds": time.perf_counter() - started}

    benches = args.benchmarks.split(",")
    print(f"\nToM dev split, {args.limit} items per benchmark ({len(items)} items), model {args.model}\n")
    header = "| method | accuracy % | " + " | ".join(benches) + " | calls/q | tokens/q | s/q | failures |"
    # calls/q counts model requests whether the backend or the cache answered (a rerun shows the same cost)
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, row in table.items():
        s = row["summary"]
        per = s["per_question"]
        accs = " | ".join(f"{100 * s['benchmarks'][b]['accuracy']:.0f}" if b in s["benchmarks"] else "-" for b in benches)
        print(f"| {name} | {100 * s['overall']['accuracy']:.1f} | {accs} | {per['requests']:.1f} | "
              f"{per['tokens']:.0f} | {per['seconds']:.1f} | {s['overall']['failures']} |")
    if "autotom" in table:
        bt = [json.loads(line) for line in (args.out / "autotom" / "results.jsonl").read_text().splitlines()
              if '"bigtom"' in line]
        if bt:
            calls = sum(r["requests"] for r in bt) / len(bt)
            print(f"\nautotom calls per BigToM question: {calls:.1f} vs ~{REFERENCE_CALLS_BIGTOM} for the reference "
                  f"implementation ({calls / REFERENCE_CALLS_BIGTOM:.2f}x)")
        if "direct" in table:
            ratio = table["autotom"]["summary"]["per_question"]["requests"] / max(table["direct"]["summary"]["per_question"]["requests"], 1e-9)
            print(f"autotom calls per question vs direct: {ratio:.1f}x")
    print("(calls and tokens count cached answers too; seconds are this run's: a rerun replays from the cache)")
    args.out.mkdir(parents=True, exist_ok=True)
    out = {"format_version": 1, "model": args.model, "limit": args.limit, "n_items": len(items),
           "methods": {k: {"wall_seconds": v["wall_seconds"], "overall": v["summary"]["overall"],
                           "per_question": v["summary"]["per_question"],
                           "benchmarks": {b: {"accuracy": x["accuracy"], "n": x["n"], "ci95": x["ci95"]}
                                          for b, x in v["summary"]["benchmarks"].items()}}
                       for k, v in table.items()}}
    (args.out / "tom_dev.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {args.out / 'tom_dev.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
