"""ToM dev-split benchmark: autotom, direct and simtom on a stratified sample of every benchmark.

    python bench/tom_dev.py [--limit 10] [--model local:qwen1.5b] [--methods autotom,direct,simtom] [--out DIR]
                            [--against DIR_OF_AN_EARLIER_RUN] [--budget N] [--rows] [--ablate RULE ...]
                            [--reproducible]
    python bench/tom_dev.py --split test [--per-benchmark 20] [--seed 28] --model M --out DIR   # the test protocol
    python bench/tom_dev.py --oracle [--split dev|test]          # the engine's cap with a perfect likelihood

The test protocol (`--split test`): a fixed sample of the test items of every benchmark (items.sample_stratified:
20 per benchmark, round-robin over question types, each type shuffled with seed 28; the ids are written to
sample.json), autotom and direct on the same items, accuracy with Wilson CIs and autotom minus direct (paired
bootstrap CI) per benchmark, cost and calibration per benchmark. Tune on dev only; run the test protocol once per
engine version and commit its per-item results beside the dev ones. `--oracle` runs AutoToM with
oracle.OracleLikelihood (no model calls) on the same items and reports the cap (what the deterministic layer lets
a perfect likelihood get) and every item below it. `--ablate RULE` turns one text rule off (rules.py; give it its
own --out). `--reproducible` serves `local:` models without prompt-cache reuse (outputs independent of request
order). Rows whose every call came from the cache are marked replayed, and timings count fresh rows only.

Items are run in rounds (one item per benchmark per round, every method on the round before the next), so
a run stopped at any time holds all methods on the same items. Prints, per method, accuracy with Wilson
95% intervals (overall and per benchmark), calibration (Brier, ECE, log loss), the share of ties, the
share of questions whose model discovery stopped on the budget, median likelihood requests, model
requests / tokens / seconds per question, and each method's accuracy minus the first method's on the same
items (paired bootstrap 95% CI); with --against, each method against its own results in an earlier run (another
engine or setting) on the items both runs did; writes the same as JSON (format_version 4). Resumable:
results.jsonl per method are kept and every model call is cached, so a rerun only pays for what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from thoughttrace.evals.stats import Scale, paired_difference
from thoughttrace.llm import get_model
from thoughttrace.tom.benchmarks import BENCHMARKS, load_uniform
from thoughttrace.tom.harness import median, read_results, run_bench, summarise
from thoughttrace.tom.items import TEST_PER_BENCHMARK, TEST_SEED, ToMItem, sample_stratified, select
from thoughttrace.tom.methods import get_method
from thoughttrace.tom.model_space import ACTION, BELIEF
from thoughttrace.tom.oracle import cap, cap_summary
from thoughttrace.tom.rules import RULES, without

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TOM = Path(os.environ.get("THOUGHTTRACE_SHARED", REPO.parent / "shared")) / "data" / "tom"
REFERENCE_CALLS_BIGTOM = 28  # measured on the reference implementation (issue 3)
FORMAT_VERSION = 5


def method_dir(out: Path, method: str) -> Path:
    """Where a run keeps one method's results."""
    return out / method.replace(":", "_")


def rounds(items_by_bench: dict[str, list[ToMItem]]) -> list[list[ToMItem]]:
    """Round r holds the r-th item of every benchmark."""
    depth = max((len(v) for v in items_by_bench.values()), default=0)
    return [[v[r] for v in items_by_bench.values() if r < len(v)] for r in range(depth)]


def _pct(a: dict[str, Any]) -> str:
    if not a["n"]:
        return "n/a (n=0)"
    lo, hi = a["ci95"]
    return f"{100 * a['accuracy']:.0f} [{100 * lo:.0f},{100 * hi:.0f}] (n={a['n']})"


def _f(x: float | None, d: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{d}f}"


def report(table: dict[str, dict[str, Any]], benches: list[str], model: str, split: str = "dev") -> str:
    lines = [f"ToM {split} split, model {model}", "",
             "| method | done | accuracy % [95% CI] | " + " | ".join(benches) + " | failures |",
             "|" + "---|" * (4 + len(benches))]
    for name, s in table.items():
        accs = " | ".join(_pct(s["benchmarks"][b]) if b in s["benchmarks"] else "-" for b in benches)
        lines.append(f"| {name} | {s['overall']['n']} | {_pct(s['overall'])} | {accs} | {s['overall']['failures']} |")
    lines += ["", "| method | Brier | ECE | log loss | calibrated n | ties | stopped on budget | median lik. req (ToMi / BigToM / all) "
              "| requests/q | tokens/q | s/q |", "|" + "---|" * 11]
    for name, s in table.items():
        o, pq = s["overall"], s["per_question"]
        if not o["n"]:
            lines.append(f"| {name} | no item done yet |" + " |" * 9)
            continue
        c = o["calibration"]
        ties = o["tie_share"]
        bud = o["stopped_on_budget"]
        med = " / ".join(_f(s["benchmarks"].get(b, {}).get("likelihood_requests_median"), 1) for b in ("tomi", "bigtom"))
        lines.append(f"| {name} | {_f(c['brier'])} | {_f(c['ece'])} | {_f(c['log_loss'])} | {c['n']} | "
                     f"{ties['k']}/{ties['n']} | {'n/a' if bud is None else str(bud['k']) + '/' + str(bud['n'])} | "
                     f"{med} / {_f(o['likelihood_requests_median'], 1)} | {pq['requests']:.1f} | {pq['tokens']:.0f} | "
                     f"{pq['seconds']:.1f} |")
    lines.append("(requests and tokens count cached answers too; seconds are this run's wall time per question)")
    return "\n".join(lines)


ACCURACY = Scale(name="accuracy", low=0.0, high=1.0)


def paired(base: list[Any], other: list[Any]) -> list[tuple[Any, Any]]:
    """(base row, other row) for every item both lists hold, in `other`'s order."""
    by_id = {r.id: r for r in base}
    return [(by_id[r.id], r) for r in other if r.id in by_id]


def accuracy_difference(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Accuracy of the second rows minus the first's, paired bootstrap CI inside [-1, 1]."""
    return paired_difference([float(b.correct) for b, _ in pairs], [float(t.correct) for _, t in pairs],
                             scale=ACCURACY).model_dump()


def differences(rows: dict[str, list[Any]], base: str) -> dict[str, dict[str, Any]]:
    """Each method's accuracy minus `base`'s on the items both have done (paired: one item, both answers)."""
    return {name: accuracy_difference(paired(rows[base], rs)) for name, rs in rows.items() if name != base}


def difference_lines(diffs: dict[str, dict[str, Any]], base: str) -> list[str]:
    lines = ["", f"| accuracy minus {base}'s (same items) | points [95% CI, paired bootstrap] | n |", "|---|---|---|"]
    for name, e in diffs.items():
        if e["mean"] is None or e["low"] is None:
            lines.append(f"| {name} | n/a ({e['reason']}) | {e['n']} |")
        else:
            lines.append(f"| {name} | {100 * e['mean']:+.0f} [{100 * e['low']:+.0f}, {100 * e['high']:+.0f}] | {e['n']} |")
    return lines


REQUESTS = Scale(name="likelihood requests", low=0.0)


def against(now: list[Any], before: list[Any]) -> dict[str, Any]:
    """One method's results now against the same method's in an earlier run, on the items both did: accuracy
    and likelihood requests as paired differences (now minus before), medians, budget stops and tokens."""
    pairs = paired(before, now)
    lik = [(b.likelihood_requests, t.likelihood_requests) for b, t in pairs
           if b.likelihood_requests is not None and t.likelihood_requests is not None]

    def side(rs: list[Any]) -> dict[str, Any]:
        return {"correct": sum(bool(r.correct) for r in rs),
                "stopped_on_budget": sum(r.stopped_because == "budget" for r in rs),
                "likelihood_requests_median": median([float(r.likelihood_requests) for r in rs
                                                      if r.likelihood_requests is not None]),
                "tokens_per_question": sum(r.tokens for r in rs) / len(rs) if rs else None}

    requests = paired_difference([float(b) for b, _ in lik], [float(t) for _, t in lik], scale=REQUESTS).model_dump()
    if pairs and not lik:
        requests["reason"] = "the method sends no likelihood requests (only autotom does)"
    return {"n": len(pairs), "before": side([b for b, _ in pairs]), "now": side([t for _, t in pairs]),
            "accuracy": accuracy_difference(pairs), "likelihood_requests": requests}


def against_lines(comparisons: dict[str, dict[str, Any]], before_dir: Path) -> list[str]:
    def est(e: dict[str, Any], factor: float, digits: int) -> str:
        if e["mean"] is None or e["low"] is None:
            return f"n/a ({e['reason']})"
        return f"{factor * e['mean']:+.{digits}f} [{factor * e['low']:+.{digits}f}, {factor * e['high']:+.{digits}f}]"

    lines = ["", f"Against {before_dir} (same method, items both runs did; now minus before, paired bootstrap 95% CI):",
             "| method | n | correct before -> now | accuracy points | likelihood requests per q | median lik. req "
             "| stopped on budget | tokens/q |", "|" + "---|" * 8]
    for name, c in comparisons.items():
        b, t = c["before"], c["now"]
        lines.append(f"| {name} | {c['n']} | {b['correct']} -> {t['correct']} | {est(c['accuracy'], 100, 0)} | "
                     f"{est(c['likelihood_requests'], 1, 1)} | {_f(b['likelihood_requests_median'], 1)} -> "
                     f"{_f(t['likelihood_requests_median'], 1)} | {b['stopped_on_budget']} -> {t['stopped_on_budget']} | "
                     f"{_f(b['tokens_per_question'], 0)} -> {_f(t['tokens_per_question'], 0)} |")
    return lines


def replayed(row: Any) -> bool:
    """A row whose every model call came from the cache: its answer is a replay and its time is not a fresh one."""
    return row.calls > 0 and row.cache_hits >= row.calls


def per_benchmark(rows: dict[str, list[Any]], base: str, other: str) -> dict[str, dict[str, Any]]:
    """The test protocol's table: per benchmark (and all), each method's accuracy, `other` minus `base` on the same
    items (paired bootstrap CI), cost (requests, tokens, fresh seconds per question) and calibration."""
    out: dict[str, dict[str, Any]] = {}
    benches = sorted({r.benchmark for rs in rows.values() for r in rs})
    for bench in [*benches, "all"]:
        sub = {m: [r for r in rs if bench == "all" or r.benchmark == bench] for m, rs in rows.items()}
        entry: dict[str, Any] = {"methods": {}}
        for m, rs in sub.items():
            s = summarise(rs)
            fresh = [r for r in rs if not replayed(r)]
            entry["methods"][m] = {
                "accuracy": s["overall"], "calibration": s["overall"]["calibration"],
                "requests_per_q": s["per_question"]["requests"], "tokens_per_q": s["per_question"]["tokens"],
                "likelihood_requests_median": s["overall"]["likelihood_requests_median"],
                "stopped_on_budget": s["overall"]["stopped_on_budget"], "replayed": len(rs) - len(fresh),
                "fresh_seconds_per_q": sum(r.seconds for r in fresh) / len(fresh) if fresh else None}
        if base in sub and other in sub:
            entry["difference"] = {"of": f"{other} - {base}",
                                   **accuracy_difference(paired(sub[base], sub[other]))}
        out[bench] = entry
    return out


def per_benchmark_lines(table: dict[str, dict[str, Any]], base: str, other: str) -> list[str]:
    lines = ["", f"Test protocol: {other} vs {base} on the same items, per benchmark", "",
             f"| benchmark | n | {other} % [95% CI] | {base} % [95% CI] | {other} - {base}, points [95% CI, paired] "
             f"| {other} req/q | {other} tokens/q | {base} req/q | {other} Brier / ECE | {base} Brier / ECE "
             "| replayed rows | fresh s/q |", "|" + "---|" * 12]
    for bench, e in table.items():
        ms = e["methods"]
        if other not in ms or base not in ms:
            continue
        a, b = ms[other], ms[base]
        d = e.get("difference", {})
        diff = "n/a" if d.get("mean") is None or d.get("low") is None else \
            f"{100 * d['mean']:+.0f} [{100 * d['low']:+.0f}, {100 * d['high']:+.0f}]"
        cal = lambda m: f"{_f(m['calibration']['brier'])} / {_f(m['calibration']['ece'])}"  # noqa: E731
        fresh = " / ".join(_f(m["fresh_seconds_per_q"], 1) for m in (a, b))
        lines.append(f"| {bench} | {a['accuracy']['n']} | {_pct(a['accuracy'])} | {_pct(b['accuracy'])} | {diff} | "
                     f"{a['requests_per_q']:.1f} | {a['tokens_per_q']:.0f} | {b['requests_per_q']:.1f} | {cal(a)} | "
                     f"{cal(b)} | {a['replayed']} / {b['replayed']} | {fresh} |")
    return lines


def oracle_lines(summary: dict[str, Any], split: str) -> list[str]:
    o = summary["overall"]
    lines = [f"Oracle cap ({split} items, perception {summary.get('perception', 'none')}; a perfect likelihood, no model "
             f"calls): {o['k']}/{o['n']}", "",
             "| benchmark | cap |", "|---|---|"]
    lines += [f"| {b} | {v['k']}/{v['n']} |" for b, v in sorted(summary["benchmarks"].items())]
    if summary["missed"]:
        lines += ["", "Below the cap:", "| item | type | gold | answer | stopped | notes |", "|---|---|---|---|---|---|"]
        lines += [f"| {m['id']} | {m['question_type']} | {m['gold']} | {m['answer']} | {m['stopped_because']} | "
                  f"{'; '.join(m['notes']) or '-'} |" for m in summary["missed"]]
    return lines


def autotom_options(args: argparse.Namespace) -> dict[str, Any]:
    """AutoToMConfig options from the command line (budget, rows, ablated rules)."""
    options: dict[str, Any] = {}
    if args.budget:
        options["likelihood_budget"] = args.budget
    if args.rows:
        options["row_variables"] = frozenset({BELIEF, ACTION})
    if args.ablate:
        options["rules"] = without(*args.ablate)
    return options


def load_items(args: argparse.Namespace, benches: list[str]) -> dict[str, list[ToMItem]]:
    """The run's items per benchmark: the stratified dev subset, or the test protocol's fixed sample."""
    if args.split == "test":
        return {b: sample_stratified(load_uniform(args.tom_dir, b), split="test", per_benchmark=args.per_benchmark,
                                     seed=args.seed) for b in benches}
    return {b: select(load_uniform(args.tom_dir, b), split="dev", limit=args.limit) for b in benches}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[1])
    ap.add_argument("--limit", type=int, default=10, help="dev items per benchmark, stratified by question type")
    ap.add_argument("--model", default="local", help="model string (default: the embedded Qwen2.5 0.5B)")
    ap.add_argument("--methods", default="autotom,direct,simtom")
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--tom-dir", type=Path, default=DEFAULT_TOM)
    ap.add_argument("--out", type=Path, default=REPO / "artifacts" / "tom_dev")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--budget", type=int, default=None,
                    help="autotom: most distinct likelihood requests per question (default: AutoToMConfig's, 40); "
                         "give another budget its own --out (items already done there are kept)")
    ap.add_argument("--rows", action="store_true",
                    help="autotom: ask latent Belief and Action factors a row at a time (AutoToMConfig.row_variables; "
                         "off by default, see docs/tom.md); give it its own --out")
    ap.add_argument("--report-only", action="store_true", help="summarise what results.jsonl hold; run nothing")
    ap.add_argument("--against", type=Path, default=None,
                    help="an earlier run's --out: compare each method with its own results there")
    ap.add_argument("--split", choices=("dev", "test"), default="dev",
                    help="dev (tuning; --limit per benchmark) or test (the protocol's fixed sample; run once per engine)")
    ap.add_argument("--per-benchmark", type=int, default=TEST_PER_BENCHMARK,
                    help=f"--split test: items per benchmark (default {TEST_PER_BENCHMARK}, stratified by type)")
    ap.add_argument("--seed", type=int, default=TEST_SEED, help=f"--split test: the sample's seed (default {TEST_SEED})")
    ap.add_argument("--oracle", action="store_true",
                    help="run AutoToM with a perfect likelihood (no model) on the items and report the cap")
    ap.add_argument("--oracle-perception", choices=("none", "all"), default="none",
                    help="--oracle: no perception step (default; observations latent) or a perception model that saw "
                         "everything, so the perception rules decide what each agent missed (oracle.seeing_model)")
    ap.add_argument("--ablate", action="append", default=[], metavar="RULE",
                    help="autotom: turn this text rule off (repeatable; rules.py lists them: " + ", ".join(RULES) + ")")
    ap.add_argument("--reproducible", action="store_true",
                    help="local: models without prompt-cache reuse (the same items give the same answers in any order)")
    args = ap.parse_args(argv)
    unknown = [r for r in args.ablate if r not in RULES]
    if unknown:
        ap.error(f"--ablate: unknown rule(s) {', '.join(unknown)}; known rules: {', '.join(RULES)}")
    if args.split == "test" and args.per_benchmark < 1:
        ap.error("--per-benchmark must be at least 1 (the protocol uses 20)")
    if args.split == "test" and args.methods == ap.get_default("methods"):
        args.methods = "direct,autotom"

    benches = args.benchmarks.split(",")
    methods = args.methods.split(",")
    by_bench = load_items(args, benches)
    if args.oracle:
        return run_oracle(args, by_bench)
    out_dirs = {m: method_dir(args.out, m) for m in methods}
    before = {m: method_dir(args.against, m) / "results.jsonl" for m in methods} if args.against else {}
    for path in before.values():
        if not path.exists():  # checked before a long run, not after it
            raise SystemExit(f"--against {args.against}: no {path}; pass the --out directory of an earlier run")
    started = time.perf_counter()
    if not args.report_only:
        extra: dict[str, Any] = {"reproducible": True} if args.reproducible and args.model.startswith("local") else {}
        model = get_model(args.model, **extra)
        for r, batch in enumerate(rounds(by_bench)):
            for name in methods:
                options = autotom_options(args) if name == "autotom" else {}
                model.run(run_bench(batch, get_method(name, **options), model, out_dirs[name],
                                    concurrency=args.concurrency, progress=sys.stderr.isatty()))
            print(f"round {r + 1}: {len(batch)} items x {len(methods)} methods done "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    wanted = {it.id for v in by_bench.values() for it in v}
    rows = {name: [x for x in read_results(out_dirs[name] / "results.jsonl") if x.id in wanted] for name in methods}
    table = {name: summarise(rs) for name, rs in rows.items()}
    diffs = differences(rows, methods[0])
    parts = [report(table, benches, args.model, args.split), *difference_lines(diffs, methods[0])]
    comparisons = {name: against(rows[name], [x for x in read_results(path) if x.id in wanted])
                   for name, path in before.items()}
    if comparisons:
        parts += against_lines(comparisons, args.against)
    protocol = None
    if args.split == "test" and "autotom" in rows and "direct" in rows:
        protocol = per_benchmark(rows, "direct", "autotom")
        parts += per_benchmark_lines(protocol, "direct", "autotom")
    text = "\n".join(parts)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.split == "test":
        write_sample(args, by_bench)
    payload = {"format_version": FORMAT_VERSION, "model": args.model, "split": args.split, "limit": args.limit,
               "per_benchmark": args.per_benchmark if args.split == "test" else None,
               "seed": args.seed if args.split == "test" else None, "ablate": args.ablate,
               "reproducible": args.reproducible, "test_protocol": protocol, "budget": args.budget,
               "n_items": len(wanted), "wall_seconds": time.perf_counter() - started, "methods": table,
               "differences": {"base": methods[0], "accuracy": diffs},
               "against": {"run": str(args.against), "methods": comparisons} if args.against is not None else None}
    (args.out / "tom_dev.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    (args.out / "tom_dev.md").write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'tom_dev.json'}")
    return 0


def write_sample(args: argparse.Namespace, by_bench: dict[str, list[ToMItem]]) -> None:
    """The test protocol's item ids, so a later run (or a reader) sees exactly which items were used."""
    args.out.mkdir(parents=True, exist_ok=True)
    sample = {"format_version": 1, "split": "test", "per_benchmark": args.per_benchmark, "seed": args.seed,
              "ids": {b: [it.id for it in v] for b, v in by_bench.items()},
              "question_types": {b: sorted({it.question_type for it in v}) for b, v in by_bench.items()}}
    (args.out / "sample.json").write_text(json.dumps(sample, indent=1), encoding="utf-8")


def run_oracle(args: argparse.Namespace, by_bench: dict[str, list[ToMItem]]) -> int:
    """The cap: AutoToM with the oracle likelihood on the run's items (no model), with the command line's autotom
    options (an --ablate shows what a rule costs or buys a perfect likelihood)."""
    from thoughttrace.tom.autotom import AutoToMConfig

    started = time.perf_counter()
    items = [it for v in by_bench.values() for it in v]
    rows = asyncio.run(cap(items, AutoToMConfig(**autotom_options(args)), perception=args.oracle_perception))
    summary = cap_summary(rows)
    summary.update(split=args.split, perception=args.oracle_perception, ablate=args.ablate, budget=args.budget, wall_seconds=time.perf_counter() - started,
                   rows=[r.as_dict() for r in rows])
    text = "\n".join(oracle_lines(summary, args.split))
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.split == "test":
        write_sample(args, by_bench)
    (args.out / "oracle.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    (args.out / "oracle.md").write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out / 'oracle.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
