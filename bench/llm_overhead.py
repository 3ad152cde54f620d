"""Overhead of our model client vs raw httpx against the same local llama.cpp server.

200 short requests (default) with concurrency 4, through `get_model("openai-compatible/...")` (cache on,
so cache writes count against us) and through a bare httpx.AsyncClient with the same bodies; two rounds
each, interleaved, with fresh prompts per run so llama.cpp's prompt cache favours neither. Then the same
requests again through our client, served from the cache: the cache-hit latency.

    python bench/llm_overhead.py [--n 200] [--concurrency 4] [--model smollm2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from thoughttrace.llm import get_model
from thoughttrace.llm.server import LocalServer


def prompts(tag: str, n: int) -> list[str]:
    return [f"[{tag}-{i}] Reply with the number {i} and nothing else." for i in range(n)]


async def run_ours(base_url: str, items: list[str], concurrency: int, cache: Path) -> tuple[float, list[float]]:
    model = get_model("openai-compatible/bench", base_url=base_url, cache=cache, max_connections=concurrency)
    latencies: list[float] = []

    async def one(p: str) -> None:
        t = time.perf_counter()
        await model.agenerate(p, max_tokens=4)
        latencies.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(one(p) for p in items))
    elapsed = time.perf_counter() - start
    await model.aclose()
    return elapsed, latencies


async def run_raw(base_url: str, items: list[str], concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:

        async def one(p: str) -> None:
            async with sem:
                body = {"model": "bench", "messages": [{"role": "user", "content": p}], "max_tokens": 4,
                        "temperature": 0.0, "top_p": 1.0, "seed": 0}
                r = await client.post("/chat/completions", json=body)
                r.raise_for_status()
                r.json()["choices"][0]["message"]["content"]

        start = time.perf_counter()
        await asyncio.gather(*(one(p) for p in items))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, LocalServer(args.model, parallel=args.concurrency) as url:
        asyncio.run(run_raw(url, prompts("warm", 8), args.concurrency))
        raw_times, our_times = [], []
        for rnd in range(2):
            raw_times.append(asyncio.run(run_raw(url, prompts(f"raw{rnd}", args.n), args.concurrency)))
            cache = Path(tmp) / f"cache{rnd}.sqlite"
            elapsed, _ = asyncio.run(run_ours(url, prompts(f"ours{rnd}", args.n), args.concurrency, cache))
            our_times.append(elapsed)
        hit_elapsed, hit_lat = asyncio.run(run_ours(url, prompts("ours1", args.n), args.concurrency,
                                                    Path(tmp) / "cache1.sqlite"))

    raw_tp = args.n / min(raw_times)
    our_tp = args.n / min(our_times)
    figures = {
        "format_version": 1,
        "requests": args.n,
        "concurrency": args.concurrency,
        "raw_httpx_req_per_s": round(raw_tp, 2),
        "thoughttrace_req_per_s": round(our_tp, 2),
        "throughput_ratio": round(our_tp / raw_tp, 3),
        "cache_hit_median_ms": round(statistics.median(hit_lat) * 1000, 3),
        "cache_hit_p95_ms": round(sorted(hit_lat)[int(0.95 * len(hit_lat))] * 1000, 3),
        "cache_hit_run_s": round(hit_elapsed, 3),
    }
    print(f"{'':32}{'req/s':>10}")
    print(f"{'raw httpx':32}{raw_tp:>10.2f}")
    print(f"{'thoughttrace client (cached on)':32}{our_tp:>10.2f}")
    print(f"throughput ratio ours/raw: {figures['throughput_ratio']:.3f} (target >= 0.9)")
    print(f"cache hit latency: median {figures['cache_hit_median_ms']:.2f} ms, p95 {figures['cache_hit_p95_ms']:.2f} ms "
          f"({args.n} hits in {hit_elapsed:.2f} s)")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
