"""The benchmark harness: run a method over items, write per-item results and a summary.

Outputs in `out_dir` (every file carries `format_version`):
- `results.jsonl`: one line per item (answer, posterior, correct, requests = calls + cache hits,
  tokens (cached results keep their original usage), seconds, error);
- `summary.json` and `summary.md`: accuracy overall, per benchmark, per question type and per official
  grouping, each with a Wilson 95% interval, failures, ties, calibration (Brier, ECE, log loss; see
  `calibration`), the share of questions whose model discovery stopped on the budget (autotom), median
  likelihood requests, and usage per question.
Scoring is by exact set match (`predicted_set`): multi-label items ("A,C") are right only when the
predicted set equals the gold set.
Resumable: items already in results.jsonl without an error are skipped, and repeated model calls are
answered by the model layer's cache. An item that fails is recorded with its error and counted wrong.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from thoughttrace.llm import Model

from .benchmarks import official_group
from .items import ToMItem, letter
from .methods import Method, solve_safely
from .usage import TrackedModel

FORMAT_VERSION = 1


class ItemResult(BaseModel):
    format_version: int = FORMAT_VERSION
    id: str
    benchmark: str
    question_type: str
    official_group: str | None
    method: str
    model: str
    answer: str
    answer_index: int
    gold: str | None
    correct: bool
    tie: bool
    posterior: list[float]
    calls: int
    cache_hits: int
    requests: int = 0
    tokens: int
    seconds: float
    error: str | None = None
    #: the posterior mass assigned to the gold choice (single-answer items); None for multi-label ones
    p_gold: float | None = None
    multi_label: bool = False
    least_likely: bool = False
    #: the predicted set (multi-label items: every choice above the uniform share)
    predicted: list[str] = []
    #: AutoToM only (None for methods without a model discovery)
    likelihood_requests: int | None = None
    stopped_because: str | None = None
    choices_filtered: list[str] = []
    trace: dict[str, Any] | None = None


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (better than the normal one near 0, 1 and at small n)."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def predicted_set(posterior: list[float], ties: list[int], *, multi_label: bool) -> list[int]:
    """What a method's answer claims. Single-answer items: the best choice, or nothing on a tie (a tie is
    not an answer). Multi-label items ("select every true choice"): every choice whose posterior is above
    the uniform share 1/n, i.e. more likely than under ignorance."""
    if multi_label:
        n = len(posterior)
        return [i for i, p in enumerate(posterior) if p > 1.0 / n + 1e-9]
    return ties if len(ties) == 1 else []


async def run_item(method: Method, model: Model, item: ToMItem, *, keep_trace: bool = False) -> ItemResult:
    tm = TrackedModel(model)
    started = time.perf_counter()
    ans = await solve_safely(method, tm, item.story, item.question, item.choices)
    gold = item.answer_indices
    # scored by exact set match: a single-answer item is right when its gold choice is the single best
    # (for "least likely" questions: the single worst); a multi-label item when the sets are equal
    pred = predicted_set(ans.posterior, ans.ties, multi_label=item.multi_label)
    correct = gold is not None and ans.error is None and bool(pred) and sorted(pred) == sorted(gold)
    p_gold = None if gold is None or item.multi_label else ans.posterior[gold[0]]
    discovery = ans.trace.get("discovery") or {}
    return ItemResult(
        id=item.id, benchmark=item.benchmark, question_type=item.question_type, official_group=official_group(item),
        method=method.name, model=model.spec, answer=ans.letter, answer_index=ans.answer, gold=item.answer,
        correct=correct, tie=ans.is_tie, posterior=ans.posterior, calls=ans.usage.calls,
        cache_hits=ans.usage.cache_hits, requests=ans.usage.requests, tokens=ans.usage.tokens, seconds=time.perf_counter() - started,
        error=ans.error, p_gold=p_gold, multi_label=item.multi_label, least_likely=ans.least_likely,
        predicted=[letter(i) for i in pred], likelihood_requests=ans.trace.get("likelihood_requests"),
        stopped_because=discovery.get("stopped_because"), choices_filtered=ans.trace.get("choices_filtered", []),
        trace=ans.trace if keep_trace else None,
    )


def read_results(path: Path) -> list[ItemResult]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(ItemResult.model_validate_json(line))
            except ValueError:
                continue  # a line cut by an interrupted run is redone
    return out


async def run_bench(items: list[ToMItem], method: Method, model: Model, out_dir: str | Path, *,
                    concurrency: int = 1, keep_trace: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run `method` on `items`, appending to out_dir/results.jsonl; returns the summary dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    previous = {r.id: r for r in read_results(results_path) if r.error is None and r.method == method.name
                and r.model == model.spec}
    todo = [it for it in items if it.id not in previous]
    # rewrite without stale rows (errors, other methods), then append as items finish
    wanted = {it.id for it in items}
    results_path.write_text("".join(r.model_dump_json() + "\n" for r in previous.values()), encoding="utf-8")
    sem = asyncio.Semaphore(max(1, concurrency))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=f"tom {method.name}", unit="item")
    lock = asyncio.Lock()
    fresh: list[ItemResult] = []

    async def one(item: ToMItem) -> None:
        async with sem:
            res = await run_item_safely(method, model, item, keep_trace=keep_trace)
        async with lock:
            fresh.append(res)
            with results_path.open("a", encoding="utf-8") as fh:
                fh.write(res.model_dump_json() + "\n")
            if bar is not None:
                bar.update(1)

    await asyncio.gather(*[one(it) for it in todo])
    if bar is not None:
        bar.close()
    all_results = [r for r in [*previous.values(), *fresh] if r.id in wanted]
    return write_summary_files(out, all_results, method.name, model.spec, model.usage.report().model_dump())


async def run_item_safely(method: Method, model: Model, item: ToMItem, *, keep_trace: bool = False) -> ItemResult:
    """`run_item`, or the item recorded with its error and counted wrong: one broken item never stops a run."""
    try:
        return await run_item(method, model, item, keep_trace=keep_trace)
    except Exception as exc:  # noqa: BLE001 - one broken item must not stop a long run
        n = len(item.choices)
        return ItemResult(id=item.id, benchmark=item.benchmark, question_type=item.question_type,
                          official_group=official_group(item), method=method.name, model=model.spec,
                          answer="A", answer_index=0, gold=item.answer, correct=False, tie=True,
                          posterior=[1.0 / n] * n, calls=0, cache_hits=0, tokens=0, seconds=0.0,
                          error=f"{type(exc).__name__}: {exc}", multi_label=item.multi_label)


def write_summary_files(out: Path, results: list[ItemResult], method: str, model: str,
                        usage: dict[str, Any]) -> dict[str, Any]:
    """summary.json and summary.md over every result (both engines of `tom bench` end here)."""
    summary = summarise(results)
    summary.update({"method": method, "model": model, "usage": usage})
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(summary_markdown(summary), encoding="utf-8")
    return summary


#: log loss clamps the gold choice's probability here, so one zero does not make the mean infinite
LOG_LOSS_FLOOR = 1e-6
ECE_BINS = 10


def calibration(rows: list[ItemResult]) -> dict[str, Any]:
    """Brier score (multi-class, sum over choices), expected calibration error (confidence = the top
    choice's posterior, 10 equal-width bins) and log loss of the gold choice.

    Computed over single-answer items whose posterior is a distribution over "which choice is the answer":
    'least likely' questions answered by the argmin of a method's posterior, and multi-label items, are
    left out and counted in `excluded` (their posterior is not a forecast of the answer).
    """
    usable = [r for r in rows if r.p_gold is not None and not r.least_likely and r.gold and "," not in r.gold]
    out: dict[str, Any] = {"n": len(usable), "excluded": len(rows) - len(usable)}
    if not usable:
        return {**out, "brier": None, "ece": None, "log_loss": None,
                "reason": "no single-answer item forecast by the posterior"}
    brier = []
    for r in usable:
        g = ord(r.gold) - 65  # type: ignore[arg-type]
        brier.append(sum((p - (1.0 if i == g else 0.0)) ** 2 for i, p in enumerate(r.posterior)))
    bins: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for r in usable:
        conf = max(r.posterior)
        bins[min(int(conf * ECE_BINS), ECE_BINS - 1)].append((conf, r.correct))
    ece = sum(abs(sum(c for c, _ in b) / len(b) - sum(ok for _, ok in b) / len(b)) * len(b)
              for b in bins.values()) / len(usable)
    log_loss = sum(-math.log(max(r.p_gold or 0.0, LOG_LOSS_FLOOR)) for r in usable) / len(usable)
    return {**out, "brier": sum(brier) / len(brier), "ece": ece, "log_loss": log_loss}


def _share(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "share": k / n if n else None, "ci95": [lo, hi] if n else None}


def median(values: list[float]) -> float | None:
    """The median, or None for no values (a null a report can show, not an error)."""
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def _acc(rows: list[ItemResult]) -> dict[str, Any]:
    k, n = sum(r.correct for r in rows), len(rows)
    lo, hi = wilson(k, n)
    discovered = [r for r in rows if r.stopped_because is not None]
    lik = [float(r.likelihood_requests) for r in rows if r.likelihood_requests is not None]
    return {"n": n, "correct": k, "accuracy": k / n if n else 0.0, "ci95": [lo, hi],
            "failures": sum(r.error is not None for r in rows), "ties": sum(r.tie for r in rows),
            "tie_share": _share(sum(r.tie for r in rows), n),
            "calibration": calibration(rows),
            # only methods with a model discovery (autotom) report these; None otherwise
            "stopped_on_budget": _share(sum(r.stopped_because == "budget" for r in discovered), len(discovered))
            if discovered else None,
            "likelihood_requests_median": median(lik),
            "requests_median": median([float(r.requests) for r in rows])}


def summarise(results: Iterable[ItemResult]) -> dict[str, Any]:
    rows = list(results)
    by_bench: dict[str, list[ItemResult]] = defaultdict(list)
    for r in rows:
        by_bench[r.benchmark].append(r)
    benches: dict[str, Any] = {}
    for bench, rs in sorted(by_bench.items()):
        types: dict[str, list[ItemResult]] = defaultdict(list)
        groups: dict[str, list[ItemResult]] = defaultdict(list)
        for r in rs:
            types[r.question_type].append(r)
            if r.official_group:
                groups[r.official_group].append(r)
        benches[bench] = {**_acc(rs), "by_question_type": {t: _acc(v) for t, v in sorted(types.items())},
                          "by_official_group": {g: _acc(v) for g, v in sorted(groups.items())}}
    n = max(len(rows), 1)
    return {
        "format_version": FORMAT_VERSION,
        "overall": _acc(rows),
        "benchmarks": benches,
        "per_question": {"requests": sum(r.requests for r in rows) / n, "calls": sum(r.calls for r in rows) / n,
                         "tokens": sum(r.tokens for r in rows) / n,
                         "seconds": sum(r.seconds for r in rows) / n, "cache_hits": sum(r.cache_hits for r in rows) / n},
        "errors": [{"id": r.id, "error": r.error} for r in rows if r.error],
    }


def summary_markdown(summary: dict[str, Any]) -> str:
    def pct(a: dict[str, Any]) -> str:
        lo, hi = a["ci95"]
        return f"{100 * a['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"

    lines = [f"# ToM bench: {summary.get('method')} with {summary.get('model')}", "",
             f"Overall: {pct(summary['overall'])} % (n = {summary['overall']['n']}, "
             f"{summary['overall']['failures']} failures, {summary['overall']['ties']} ties)", "",
             "| benchmark | group | n | accuracy % [95% CI] |", "|---|---|---|---|"]
    for bench, b in summary["benchmarks"].items():
        lines.append(f"| {bench} | all | {b['n']} | {pct(b)} |")
        for g, a in b["by_official_group"].items():
            lines.append(f"| {bench} | {g} | {a['n']} | {pct(a)} |")
    lines += ["", "| benchmark | question type | n | accuracy % [95% CI] |", "|---|---|---|---|"]
    for bench, b in summary["benchmarks"].items():
        for t, a in b["by_question_type"].items():
            lines.append(f"| {bench} | {t} | {a['n']} | {pct(a)} |")
    pq = summary["per_question"]
    lines += ["", f"Per question: {pq['requests']:.1f} model requests ({pq['calls']:.1f} calls, "
              f"{pq['cache_hits']:.1f} cache hits), {pq['tokens']:.0f} tokens, {pq['seconds']:.1f} s.", ""]
    lines += ["| benchmark | n | Brier | ECE | log loss | calibrated n | ties | stopped on budget | median lik. requests |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, a in [("all", summary["overall"]), *summary["benchmarks"].items()]:
        lines.append(f"| {name} | {a['n']} | {_num(a['calibration']['brier'])} | {_num(a['calibration']['ece'])} | "
                     f"{_num(a['calibration']['log_loss'])} | {a['calibration']['n']} | {_pct_share(a['tie_share'])} | "
                     f"{_pct_share(a['stopped_on_budget'])} | {_num(a['likelihood_requests_median'], 1)} |")
    lines.append("")
    return "\n".join(lines)


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _pct_share(s: dict[str, Any] | None) -> str:
    if not s or s["share"] is None:
        return "n/a"
    lo, hi = s["ci95"]
    return f"{100 * s['share']:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}] of {s['n']}"


__all__ = ["ItemResult", "letter", "read_results", "run_bench", "run_item", "run_item_safely", "summarise",
           "summary_markdown", "wilson", "write_summary_files"]
