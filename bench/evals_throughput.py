"""Thought-inference throughput against a local llama.cpp SERVER: concurrency 1 vs 4, and a cache rerun.

Each timed run gets a freshly started server (same settings: 4 parallel slots) and a fresh response
cache, so neither run profits from the other's KV or response cache; loading the weights and one
warm-up request are outside the timing. The third run repeats the concurrency-4 run against its cache
and must make zero model calls.

    python bench/evals_throughput.py [--model smollm2] [--limit 12] [--judge/--no-judge]

Prints the figures; the ratio is the point (absolute times depend on what else the machine runs).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from thoughttrace.data import read_conversations
from thoughttrace.evals import ClipConfig, ItemStore, Judge, ThoughtInferenceEval
from thoughttrace.llm import get_model
from thoughttrace.llm.server import LocalServer

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thoughttrace" / "examples.dev.jsonl"


def run_once(base_url: str, cache: Path, out: Path, convs: list[Any], concurrency: int, args: argparse.Namespace
             ) -> tuple[float, Any, int]:
    model = get_model(f"openai-compatible/{args.model}", base_url=base_url, max_connections=4, cache=cache)
    judge = Judge(model, swap=False, max_retries=0, max_tokens=args.max_tokens) if args.judge else None
    ev = ThoughtInferenceEval(model, judge, clip=ClipConfig(max_chars=args.context_chars, max_message_chars=500),
                              max_tokens=args.max_tokens)
    store = ItemStore(out / "items.jsonl")
    start = time.perf_counter()
    stats = model.run(ev.arun(convs, store, limit=args.limit or None, concurrency=concurrency, progress=False))
    elapsed = time.perf_counter() - start
    report = model.usage.report()
    model.close()
    return elapsed, report, stats.computed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="registry name or .gguf path for the llama.cpp server")
    ap.add_argument("--file", default=str(EXAMPLES))
    ap.add_argument("--limit", type=int, default=12, help="items (0 = every reason and reaction in the file)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--context-chars", type=int, default=2000)
    ap.add_argument("--judge", action=argparse.BooleanOptionalAction, default=True,
                    help="judge each inference with the same server (one order, no retries)")
    args = ap.parse_args()
    convs = read_conversations(args.file)
    tmp = Path(tempfile.mkdtemp(prefix="evals-bench-"))
    results: dict[int, tuple[float, Any, int]] = {}
    for conc in (1, 4):
        with LocalServer(args.model, parallel=4) as base_url:
            warm = get_model(f"openai-compatible/{args.model}", base_url=base_url, cache=False)
            warm.generate("Say hi.", max_tokens=4)
            warm.close()
            results[conc] = run_once(base_url, tmp / f"cache{conc}.sqlite", tmp / f"out{conc}", convs, conc, args)
        gc.collect()
    with LocalServer(args.model, parallel=4) as base_url:
        rerun = run_once(base_url, tmp / "cache4.sqlite", tmp / "rerun", convs, 4, args)
    gc.collect()

    t1, r1, n1 = results[1]
    t4, r4, n4 = results[4]
    tc, rc, nc = rerun
    print(f"thought inference, {n1} items from {Path(args.file).name}, model {args.model} via llama.cpp server "
          f"(4 slots), judge={'same model' if args.judge else 'off'}")
    print(f"{'run':<28}{'seconds':>9}{'calls':>7}{'cache hits':>11}{'items/s':>9}{'completion tok/s':>18}")
    for name, (t, r, n) in (("concurrency 1", results[1]), ("concurrency 4", results[4]), ("rerun from cache (c=4)", rerun)):
        print(f"{name:<28}{t:>9.2f}{r.calls:>7}{r.cache_hits:>11}{n / t:>9.2f}{r.completion_tokens / t:>18.1f}")
    print(f"speed-up concurrency 4 vs 1: {t1 / t4:.2f}x")
    print(f"cache rerun: {tc:.2f} s, {rc.calls} model calls ({t4 / tc:.0f}x faster than the live run)")
    assert n1 == n4 == nc and rc.calls == 0, "the cache rerun must not call the model"


if __name__ == "__main__":
    main()
