"""End to end on this machine: rewrite -> pairs -> DPO (a few CPU steps) -> answers -> arena -> results table.

Tiny and real: SmolLM2-135M (llama.cpp, `local:smollm2`) rewrites answers guided by the users' reactions
and judges; the same model's GGUF, dequantised by transformers, is DPO-trained with LoRA for a few
steps; the arena compares the trained adapter with the untrained base on the same engine. The numbers
say the pipeline runs, not that a 135M model got better (see docs/align.md for the real experiment).

    python bench/align_e2e.py [--out artifacts/align_e2e] [--steps 3] [--questions 6] [--targets 6]

Reruns resume: model calls come from the cache in OUT, answers and judgments from their files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thoughttrace" / "examples.dev.jsonl"


def run(out: Path, *, examples: Path = DEFAULT_EXAMPLES, steps: int = 3, questions: int = 6, targets: int = 6,
        rewrite_tokens: int = 160, answer_tokens: int = 128, judge_tokens: int = 320, samples: int = 200,
        model: str = "local:smollm2", base: str = "smollm2", lr: float = 1e-3, progress: bool = True) -> dict[str, Any]:
    """Run the whole pipeline into `out`; returns the figures (also written to out/summary.json)."""
    os.environ.setdefault("THOUGHTTRACE_CACHE", str(out / "llm-cache.sqlite"))
    from thoughttrace.align import (
        RewriteSettings,
        answer_with_adapter,
        arun_games,
        index_answers,
        load_answers,
        load_config,
        load_questions,
        pairs_from_rewrites,
        results_markdown,
        rewrite_conversations,
        score_arena,
        train_dpo,
    )
    from thoughttrace.align.records import write_json, write_jsonl
    from thoughttrace.data import read_conversations
    from thoughttrace.llm import get_model

    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    llm = get_model(model)

    t = time.perf_counter()
    settings = RewriteSettings(guide="thoughts", reactions="all", max_history_chars=1200, max_answer_chars=1200,
                               max_tokens=rewrite_tokens)
    rewrites = rewrite_conversations(read_conversations(examples), llm, settings, limit=targets, progress=progress)
    write_jsonl(rewrites, out / "rewrites.thoughts.jsonl")
    timings["rewrite_s"] = time.perf_counter() - t

    t = time.perf_counter()
    pairs = pairs_from_rewrites(rewrites, min_chars=20, keep_truncated=True)  # tiny token budgets here
    if not pairs:
        raise SystemExit("no pairs survived the filters; look at out/rewrites.thoughts.jsonl")
    write_jsonl(pairs, out / "pairs.jsonl")
    timings["pairs_s"] = time.perf_counter() - t

    t = time.perf_counter()
    run_dir = out / "dpo"
    if run_dir.exists() and not (run_dir / "train_meta.json").exists():
        shutil.rmtree(run_dir)  # an interrupted run: start it again
    if (run_dir / "train_meta.json").exists():
        summary = json.loads((run_dir / "train_meta.json").read_text())
    else:
        cfg = load_config(model=base, max_steps=steps, max_length=256, per_device_train_batch_size=1,
                          gradient_accumulation_steps=1, learning_rate=lr, warmup=0, save_steps=steps,
                          lora={"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0,
                                "target_modules": "all-linear"})
        summary = train_dpo([out / "pairs.jsonl"], run_dir, cfg)
    timings["train_s"] = time.perf_counter() - t
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]

    t = time.perf_counter()
    qs = load_questions("demo", limit=questions)
    answers_file = out / "answers.jsonl"
    answer_with_adapter(qs, None, answers_file, name="smollm2-base", base_model=base, max_tokens=answer_tokens,
                        progress=progress)
    answer_with_adapter(qs, run_dir, answers_file, name="smollm2-dpo", max_tokens=answer_tokens, progress=progress)
    timings["answers_s"] = time.perf_counter() - t

    t = time.perf_counter()
    answers = index_answers(load_answers(answers_file))
    judgments = llm.run(arun_games(qs, answers, "smollm2-base", llm, out=out / "judgments.jsonl",
                                   max_tokens=judge_tokens, retries=1, progress=progress))
    result = score_arena(judgments, answers, "smollm2-base", samples=samples)
    timings["arena_s"] = time.perf_counter() - t
    table = results_markdown(result)
    (out / "results.md").write_text(table, encoding="utf-8")
    figures = {
        "format_version": 1,
        "rewrites": len(rewrites), "pairs": len(pairs), "train_steps": summary["steps"],
        "loss_first": metrics[0]["loss"], "loss_last": metrics[-1]["loss"],
        "loss_finite": all(math.isfinite(m["loss"]) for m in metrics),
        "adapter_saved": (run_dir / "adapter" / "adapter_model.safetensors").exists(),
        "identical_answers": sum(a.answer == answers["smollm2-base"][q].answer
                                 for q, a in answers["smollm2-dpo"].items() if q in answers["smollm2-base"]),
        "judgments": len(judgments), "unparsed": sum(j.verdict is None for j in judgments),
        "fallback_verdicts": sum(j.fallback for j in judgments),
        "arena": result.as_dict(), "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "usage": llm.usage.report().model_dump(),
    }
    write_json(figures, out / "summary.json")
    return figures | {"table": table}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("artifacts/align_e2e"))
    ap.add_argument("--examples", type=Path, default=DEFAULT_EXAMPLES)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--targets", type=int, default=6)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-3, help="DPO learning rate (high on purpose: 3 steps at 5e-6 leave a 135M model unchanged)")
    args = ap.parse_args(argv)
    f = run(args.out, examples=args.examples, steps=args.steps, questions=args.questions, targets=args.targets,
            samples=args.samples, lr=args.lr)
    print(f"rewrites {f['rewrites']}, pairs {f['pairs']}, DPO steps {f['train_steps']}: loss "
          f"{f['loss_first']:.4f} -> {f['loss_last']:.4f} (finite: {f['loss_finite']}), adapter saved: "
          f"{f['adapter_saved']}")
    print(f"DPO answers identical to the base model's: {f['identical_answers']} of {f['judgments'] // 2}")
    print(f"judgments {f['judgments']} ({f['unparsed']} without a verdict, {f['fallback_verdicts']} from the "
          "constrained fallback)")
    print("timings (s): " + ", ".join(f"{k} {v}" for k, v in f["timings_s"].items()))
    print()
    print(f["table"], end="")
    return 0 if f["loss_finite"] and f["adapter_saved"] else 1


if __name__ == "__main__":
    sys.exit(main())
