"""Cost and sharpness of model-based inferred reactions (evals `--condition inferred --infer-method model-based`).

    THOUGHTTRACE_SHARED=/work/shared python bench/thought_inference_cost.py [--model local] [--conversations 3]
        [--limit 12] [--per-conversation K] [--only ID:INDEX,...] [--max-tokens 48] [--context-chars 2000] [--message-chars 500] [--out FILE] [--reproducible]

For each target message of the next-message eval (a user message after an assistant answer, as
`next_message.extract_items` picks them) in the first N conversations of the dev file, step 1 of the
`inferred` condition runs twice on the same candidates: the old posterior (`statements`: each candidate
scored alone as a Likely/Unlikely statement) and the new one (`row`: one distribution over the candidates, both
orders). The structured proposal is the same request in both, so the second method reads it from the response
cache (counted as a request, its tokens counted as cost; `fresh_calls` counts what the backend computed).

Reports per inferred message and method: requests, tokens, the MAP candidate's posterior (mean, median, min,
max), the posterior's entropy (nats, and as a share of the uniform's log n), where the MAP sits in the option
list (first / last / middle: a letter-taste check for rows), and requests/tokens grouped by the target's
message index (growth with turns). Progress goes to stderr; the printed table and the JSON (`--out`,
format_version 1) carry the same figures. Resumable: per-target rows are appended to `OUT.rows.jsonl` and a
rerun skips those already there (model calls are cached in `OUT.cache.sqlite`, or `--cache FILE`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from thoughttrace.data import read_conversations
from thoughttrace.evals.inferred import PosteriorMode, ThoughtInferrer
from thoughttrace.evals.next_message import extract_items
from thoughttrace.evals.transcript import ClipConfig
from thoughttrace.llm import get_model

FORMAT_VERSION = 1
MODES: tuple[PosteriorMode, ...] = ("statements", "row")


def _shared() -> Path:
    return Path(os.environ.get("THOUGHTTRACE_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def entropy(post: list[float]) -> float:
    return -sum(p * math.log(p) for p in post if p > 0)


def describe(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "min": None, "max": None}
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "min": min(values),
            "max": max(values)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        rs = [r for r in rows if r["mode"] == mode]
        # separation is measured where there is something to separate: two candidates or more
        scored = [r for r in rs if len(r["posterior"]) > 1]
        positions = {"first": 0, "last": 0, "middle": 0}
        for r in scored:
            b, n = r["best"], len(r["posterior"])
            positions["first" if b == 0 else "last" if b == n - 1 else "middle"] += 1
        by_turn: dict[int, dict[str, Any]] = {}
        for r in rs:
            by_turn.setdefault(r["index"], {"n": 0, "requests": [], "tokens": [], "max_prompt": []})
            by_turn[r["index"]]["n"] += 1
            by_turn[r["index"]]["requests"].append(r["usage"]["requests"])
            by_turn[r["index"]]["tokens"].append(r["usage"]["tokens"])
            by_turn[r["index"]]["max_prompt"].append(r["usage"].get("max_prompt_tokens", 0))
        out[mode] = {
            "n": len(rs), "n_scored": len(scored), "n_single_candidate": sum(1 for r in rs if len(r["posterior"]) == 1),
            "map_minus_uniform": describe([max(r["posterior"]) - 1 / len(r["posterior"]) for r in scored]),
            "posterior_mode_used": sorted({str(r["posterior_mode"]) for r in rs}),
            "requests": describe([float(r["usage"]["requests"]) for r in rs]),
            "structured_proposal_ok": sum(1 for r in rs if r["proposal"] and not r["proposal"].get("per_type_fallback")),
            "fresh_calls": describe([float(r["usage"]["requests"] - r["usage"]["cache_hits"]) for r in rs]),
            "tokens": describe([float(r["usage"]["tokens"]) for r in rs]),
            "best_posterior": describe([max(r["posterior"]) for r in scored]),
            "entropy_nats": describe([entropy(r["posterior"]) for r in scored]),
            "entropy_share_of_uniform": describe([entropy(r["posterior"]) / math.log(len(r["posterior"]))
                                                  for r in scored]),
            "candidates": describe([float(len(r["posterior"])) for r in scored]),
            "map_position": positions,
            "map_types": {t: sum(1 for r in scored if r["reaction_type"] == t)
                          for t in sorted({str(r["reaction_type"]) for r in scored})},
            "cpu_seconds": sum(r["cpu_seconds"] for r in rs),
            "by_turn_index": {str(k): {"n": v["n"], "requests_mean": statistics.fmean(v["requests"]),
                                       "tokens_mean": statistics.fmean(v["tokens"]),
                                       "max_prompt_tokens": max(v["max_prompt"])}
                              for k, v in sorted(by_turn.items())},
        }
    both = {(r["conversation_id"], r["message_id"]): r for r in rows if r["mode"] == "row"}
    same = [r["reaction_type"] == both[(r["conversation_id"], r["message_id"])]["reaction_type"]
            for r in rows if r["mode"] == "statements" and (r["conversation_id"], r["message_id"]) in both]
    out["map_agreement"] = {"n": len(same), "same_type": sum(same)}
    return out


def _fmt(d: dict[str, float | None], digits: int = 2) -> str:
    if d["mean"] is None:
        return "-"
    return f"{d['mean']:.{digits}f} (median {d['median']:.{digits}f}, {d['min']:.{digits}f}-{d['max']:.{digits}f})"


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| method | n | requests / msg | tokens / msg | n (2+ candidates) | MAP posterior | MAP - 1/n | "
             "entropy / log n | MAP first/mid/last |", "|---|---|---|---|---|---|---|---|---|"]
    for mode in MODES:
        s = summary[mode]
        pos = s["map_position"]
        lines.append(f"| {mode} | {s['n']} | {_fmt(s['requests'], 1)} | {_fmt(s['tokens'], 0)} | {s['n_scored']} | "
                     f"{_fmt(s['best_posterior'])} | {_fmt(s['map_minus_uniform'])} | "
                     f"{_fmt(s['entropy_share_of_uniform'])} | "
                     f"{pos['first']}/{pos['middle']}/{pos['last']} |")
    lines += ["", "| target index | n | requests statements | requests row | tokens statements | tokens row | "
              "largest prompt (tokens) |", "|---|---|---|---|---|---|---|"]
    st, rw = summary["statements"]["by_turn_index"], summary["row"]["by_turn_index"]
    for k in sorted(set(st) | set(rw), key=int):
        a, b = st.get(k, {}), rw.get(k, {})
        lines.append(f"| {k} | {a.get('n', b.get('n', 0))} | {a.get('requests_mean', float('nan')):.1f} | "
                     f"{b.get('requests_mean', float('nan')):.1f} | {a.get('tokens_mean', float('nan')):.0f} | "
                     f"{b.get('tokens_mean', float('nan')):.0f} | "
                     f"{max(a.get('max_prompt_tokens', 0), b.get('max_prompt_tokens', 0))} |")
    agree = summary["map_agreement"]
    lines.append(f"\nSame MAP reaction type under both methods: {agree['same_type']} of {agree['n']}. Structured "
                 f"proposal complete without per-type fallback: {summary['row']['structured_proposal_ok']} of "
                 f"{summary['row']['n']}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(_shared() / "data" / "thoughttrace" / "examples.dev.jsonl"))
    ap.add_argument("--model", default="local", help="model string (default: the embedded qwen0.5b)")
    ap.add_argument("--conversations", type=int, default=3)
    ap.add_argument("--limit", type=int, default=12, help="target messages at most")
    ap.add_argument("--per-conversation", type=int, default=0, help="the first K targets of each conversation (0 = all)")
    ap.add_argument("--only", default="", help="comma-separated CONVERSATION_ID:INDEX targets (e.g. health-1:6)")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--context-chars", type=int, default=2000)
    ap.add_argument("--message-chars", type=int, default=500)
    ap.add_argument("--reproducible", action="store_true", help="local models: no prompt-cache reuse")
    ap.add_argument("--summarise-only", action="store_true", help="no model: summarise the rows already in OUT.rows.jsonl")
    ap.add_argument("--out", default="bench/results/thought_inference_cost.json")
    ap.add_argument("--cache", default=None, help="response cache file (default: OUT with .cache.sqlite)")
    args = ap.parse_args()
    path = Path(args.file)
    if not path.is_file():
        sys.exit(f"no conversation file at {path}; set THOUGHTTRACE_SHARED or pass --file")
    if args.conversations < 1 or args.limit < 1:
        sys.exit("--conversations and --limit must be at least 1")
    convs = read_conversations(path)[: args.conversations]
    by_id = {c.id: c for c in convs}
    targets = extract_items(convs, ["inferred"])
    if args.per_conversation > 0:
        rank: dict[str, int] = {}
        kept = []
        for t in targets:
            rank[t.conversation_id] = rank.get(t.conversation_id, 0) + 1
            if rank[t.conversation_id] <= args.per_conversation:
                kept.append(t)
        targets = kept
    if args.only:
        wanted = {tuple(x.rsplit(":", 1)) for x in args.only.split(",") if x.strip()}
        targets = [t for t in targets if (t.conversation_id, str(t.index)) in wanted]
        if not targets:
            sys.exit(f"--only {args.only!r} names no target message (CONVERSATION_ID:INDEX of a user message)")
    targets = targets[: args.limit]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows_path = out.with_suffix(".rows.jsonl")
    rows: list[dict[str, Any]] = []
    if rows_path.exists():
        rows = [json.loads(x) for x in rows_path.read_text().splitlines() if x.strip()]
    done = {(r["conversation_id"], r["message_id"], r["mode"]) for r in rows}
    if args.summarise_only:
        if not rows:
            sys.exit(f"no rows at {rows_path} to summarise")
        summary = summarise(rows)
        out.write_text(json.dumps({"format_version": FORMAT_VERSION, "bench": "thought_inference_cost",
                                   "config": {**vars(args), "file": str(path)}, "summary": summary}, indent=2) + "\n")
        print(markdown(summary))
        return
    kw: dict[str, Any] = {"reproducible": True} if args.reproducible else {}
    model = get_model(args.model, cache=args.cache or out.with_suffix(".cache.sqlite"), **kw)
    clip = ClipConfig(max_chars=args.context_chars, max_message_chars=args.message_chars)
    inferrers = {m: ThoughtInferrer(model, "model-based", clip=clip, max_tokens=args.max_tokens, posterior_mode=m)
                 for m in MODES}
    started = time.perf_counter()
    with rows_path.open("a") as sink:
        for k, item in enumerate(targets, 1):
            for mode in MODES:
                if (item.conversation_id, item.message_id, mode) in done:
                    continue
                cpu, wall = _cpu(), time.perf_counter()
                res = model.run(inferrers[mode].infer(by_id[item.conversation_id], item.index))
                row = {"format_version": FORMAT_VERSION, "conversation_id": item.conversation_id,
                       "message_id": item.message_id, "index": item.index, "mode": mode,
                       "posterior_mode": res.posterior_mode, "proposal": res.proposal,
                       "posterior": [c["posterior"] for c in res.candidates],
                       "types": [c["type"] for c in res.candidates], "reaction_type": res.reaction_type,
                       "best": max(range(len(res.candidates)), key=lambda i: res.candidates[i]["posterior"])
                       if res.candidates else None,
                       "usage": res.usage, "error": res.error,
                       "cpu_seconds": round(_cpu() - cpu, 3), "wall_seconds": round(time.perf_counter() - wall, 3)}
                rows.append(row)
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                post = [float(c["posterior"]) for c in res.candidates]
                best = max(post) if post else float("nan")
                print(f"[{k}/{len(targets)}] {item.conversation_id} #{item.index} {mode}: "
                      f"{res.usage.get('requests')} requests, {res.usage.get('tokens')} tokens, MAP {best:.2f}, "
                      f"{row['cpu_seconds']:.1f} s CPU", file=sys.stderr, flush=True)
    model.close()
    summary = summarise(rows)
    payload = {"format_version": FORMAT_VERSION, "bench": "thought_inference_cost",
               "config": {**vars(args), "targets": len(targets), "file": str(path)},
               "max_requests": {m: inferrers[m].max_requests for m in MODES},
               "wall_seconds_this_run": round(time.perf_counter() - started, 1), "summary": summary}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(markdown(summary))
    print(f"\nCeiling on requests per inferred message: {payload['max_requests']}. JSON: {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
