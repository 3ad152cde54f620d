"""Scenarios whose first-order traces and likelihood requests are frozen in data/first_order_golden.json.

The JSON was written by `python -m tests.tom.first_order_golden` from main before the higher-order
belief-of-state sub-inference existed (commit 11759b2), so `test_first_order_unchanged.py` shows that the new
code leaves every first-order (and order-0) question byte-identical: the same requests in the same order and
the same trace. Scripted likelihoods only (no model): a fixed function of the request's text.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from thoughttrace.tom.autotom import AutoToM, AutoToMConfig
from thoughttrace.tom.benchmarks import load_uniform
from thoughttrace.tom.likelihood import LikelihoodRequest, ScriptedLikelihood

from .scripted import CHOICES, STORY, competent_model

GOLDEN = Path(__file__).parent / "data" / "first_order_golden.json"
#: first-order (and order-0) dev items of every benchmark, by id
ITEMS = {"tomi": ["tomi-00002", "tomi-00028"], "bigtom": ["bigtom-00006", "bigtom-00206", "bigtom-00406"],
         "mmtom_qa": ["mmtom_qa-00001", "mmtom_qa-00337"], "muma_tom": ["muma_tom-00004"],
         "hitom": ["hitom-00001", "hitom-00021"]}


def table(req: LikelihoodRequest) -> float:
    """A fixed, varied likelihood in [0.01, 0.97] from the request's text (some below the prune threshold)."""
    text = req.value + "|" + "|".join(f"{a}={b}" for a, b in req.facts)
    return 0.01 + (int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 97) / 100


def _request(r: LikelihoodRequest) -> list[Any]:
    return [r.agent, r.variable, r.value, [list(f) for f in r.facts], r.context]


async def run_all(tom_dir: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every scenario's posterior, trace digest and requests with `AutoToMConfig(**config)`."""
    out: dict[str, Any] = {}
    cfg = dict(config or {})
    for bench, ids in ITEMS.items():
        items = {it.id: it for it in load_uniform(tom_dir, bench)}
        for iid in ids:
            it = items[iid]
            lik = ScriptedLikelihood(table)
            ans = await AutoToM(AutoToMConfig(llm_steps=False, **cfg), likelihood=lik).solve(
                None, it.story, it.question, it.choices)
            out[iid] = _record(ans.model_dump(mode="json"), lik)
    for q in ("Where does Sally think the ball is?", "Where will Sally look for the ball?"):
        lik = ScriptedLikelihood(table)
        ans = await AutoToM(AutoToMConfig(**cfg), likelihood=lik).solve(competent_model(), STORY, q, CHOICES)
        out[f"scripted: {q}"] = _record(ans.model_dump(mode="json"), lik)
    return out


#: trace keys added after the golden file was written (they only report; nothing reads them back)
ADDED_SINCE = frozenset({"fixed_by_rule"})


def _record(answer: dict[str, Any], lik: ScriptedLikelihood) -> dict[str, Any]:
    kept = {k: v for k, v in answer["trace"].items() if k not in ADDED_SINCE}
    trace = json.dumps(kept, sort_keys=True, ensure_ascii=False)
    requests = json.dumps([_request(r) for r in lik.calls], ensure_ascii=False)
    return {"posterior": answer["posterior"], "answer": answer["answer"],
            "trace_sha256": hashlib.sha256(trace.encode()).hexdigest(),
            "requests_sha256": hashlib.sha256(requests.encode()).hexdigest(),
            "n_requests": len(lik.calls), "n_distinct": len(set(lik.calls))}


if __name__ == "__main__":
    import os

    shared = Path(os.environ.get("THOUGHTTRACE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
    data = asyncio.run(run_all(shared / "data" / "tom"))
    GOLDEN.write_text(json.dumps({"format_version": 1, "scenarios": data}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {GOLDEN}: {len(data)} scenarios, {sum(v['n_requests'] for v in data.values())} requests")
