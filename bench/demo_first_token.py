"""How long a demo participant waits for the first token, and for the whole answer (issue 22: < 5 s to start).

The demo study's model entry (system prompt, max_tokens, temperature) asks the model through the same
`Model.astream` the platform streams with; the first call loads the weights (the platform does that at start-up
in its model check), so it is reported apart. Baseline in the same process: the same request through the
llama.cpp server's own HTTP streaming endpoint with raw httpx, so the ratio shows what our layer adds.

    python bench/demo_first_token.py [--model local] [--runs 5] [--max-tokens N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from thoughttrace.collect.study import demo_study
from thoughttrace.llm import get_model

QUESTIONS = [
    "Can you help me plan a three-day trip to Lisbon on a small budget?",
    "What is the difference between a list and a tuple in Python?",
    "Write a short, friendly email asking my landlord to fix the heating.",
    "Give me three ideas for a vegetarian dinner with chickpeas.",
    "How do I explain compound interest to a twelve-year-old?",
]


async def ours(model, entry, question: str, max_tokens: int) -> tuple[float, float, int]:
    messages = [{"role": "system", "content": entry.system_prompt}, {"role": "user", "content": question}]
    t0 = time.perf_counter()
    first = None
    pieces = 0
    async for _ in model.astream(messages, max_tokens=max_tokens, temperature=entry.temperature, seed=pieces):
        if first is None:
            first = time.perf_counter() - t0
        pieces += 1
    return first or 0.0, time.perf_counter() - t0, pieces


async def raw(base_url: str, entry, question: str, max_tokens: int) -> tuple[float, float]:
    body = {"messages": [{"role": "system", "content": entry.system_prompt}, {"role": "user", "content": question}],
            "max_tokens": max_tokens, "temperature": entry.temperature, "stream": True, "seed": 1}
    t0 = time.perf_counter()
    first = None
    async with httpx.AsyncClient(timeout=600) as client, client.stream(
            "POST", f"{base_url}/v1/chat/completions", json=body) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if first is None and chunk["choices"][0]["delta"].get("content"):
                    first = time.perf_counter() - t0
    return first or 0.0, time.perf_counter() - t0


def _server_url(model) -> str | None:
    """The llama.cpp server's loopback address for `local` models (the in-process server listens there too)."""
    settings = getattr(model.backend, "settings", None)
    if settings is None:
        return None
    from thoughttrace.llm.backends.llamacpp import POOL

    return str(POOL.get(settings).listening_address).rstrip("/")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model string (default: the demo study's)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=None, help="default: the demo study's")
    args = ap.parse_args()
    entry = demo_study().models[0]
    spec = args.model or entry.spec
    max_tokens = args.max_tokens or entry.max_tokens
    model = get_model(spec, cache=False)
    t0 = time.perf_counter()
    await ours(model, entry, "Hello", 1)
    print(f"model {spec}: first call (loads the weights) {time.perf_counter() - t0:.2f} s; max_tokens {max_tokens}")
    firsts, totals, raw_firsts = [], [], []
    for q in QUESTIONS[: args.runs]:
        f, t, n = await ours(model, entry, q, max_tokens)
        firsts.append(f)
        totals.append(t)
        base_url = _server_url(model)
        if base_url:
            rf, _ = await raw(base_url, entry, q, max_tokens)
            raw_firsts.append(rf)
        print(f"  first token {f:.2f} s, whole answer {t:.1f} s ({n} pieces)")
    print(f"first token: median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s (target < 5 s); "
          f"whole answer median {statistics.median(totals):.1f} s")
    if raw_firsts:
        print(f"raw httpx to the same server: first token median {statistics.median(raw_firsts):.2f} s "
              f"(ratio ours/raw {statistics.median(firsts) / statistics.median(raw_firsts):.2f})")


if __name__ == "__main__":
    asyncio.run(main())
