"""The whole pipeline on this machine with SmolLM2 (slow: rewrites, 2 CPU DPO steps, answers, arena)."""

from __future__ import annotations

import importlib.util
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
