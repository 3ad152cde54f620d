"""The whole pipeline on this machine with SmolLM2 (slow: rewrites, 2 CPU DPO steps, answers, arena)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "align_e2e.py"


@pytest.mark.slow
@pytest.mark.model
def test_rewrite_pairs_train_arena_end_to_end(tmp_path, examples_path):
    spec = importlib.util.spec_from_file_location("align_e2e", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    f = bench.run(tmp_path / "e2e", examples=examples_path, steps=2, questions=3, targets=3, rewrite_tokens=96,
                  answer_tokens=96, judge_tokens=200, samples=50, progress=False)
    assert f["pairs"] >= 1 and f["train_steps"] == 2
    assert f["loss_finite"] and math.isfinite(f["loss_last"])
    assert f["adapter_saved"]
    assert (tmp_path / "e2e" / "dpo" / "metrics.png").exists()
    assert f["judgments"] == 6
    rows = {r["model"]: r for r in f["arena"]["models"]}
    assert set(rows) == {"smollm2-base", "smollm2-dpo"}
    assert "| smollm2-dpo |" in f["table"]

    # the adapter moved away from its zero initialisation
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "e2e" / "dpo" / "adapter" / "adapter_model.safetensors"))
    assert max(float(v.abs().max()) for k, v in weights.items() if "lora_B" in k) > 0

    # resume: one more step continues from checkpoint-2 and appends to the metrics log
    from thoughttrace.align import load_config, train_dpo
    from thoughttrace.align.train import read_metrics

    run_dir = tmp_path / "e2e" / "dpo"
    meta = json.loads((run_dir / "train_meta.json").read_text())
    cfg = load_config(**{**meta["config"], "max_steps": 3})
    summary = train_dpo([tmp_path / "e2e" / "pairs.jsonl"], run_dir, cfg, resume=True)
    assert summary["steps"] == 3 and summary["resumed_from"].endswith("checkpoint-2")
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2, 3]


@pytest.mark.model
def test_real_rewriter_and_judge_calls(conversation):
    """One real rewrite and one real judged game with local:smollm2 (short budgets)."""
    from thoughttrace.align import RewriteSettings, rewrite_conversations
    from thoughttrace.align.judge import ajudge
    from thoughttrace.llm import get_model

    llm = get_model("local:smollm2")
    (row,) = rewrite_conversations([conversation], llm, RewriteSettings(guide="messages", max_tokens=48),
                                   progress=False)
    assert row.rewrite.strip()
    verdict, attempts, _, raw = llm.run(ajudge(llm, "What is 2+2?", "4", "5", max_tokens=96, retries=1))
    assert raw and attempts >= 1
    assert verdict is None or verdict in ("A>>B", "A>B", "A=B", "B>A", "B>>A")
