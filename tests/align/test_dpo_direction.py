"""DPO learns the right DIRECTION: after training, the implicit reward margin of the training pairs
(log-ratio to the reference of chosen minus that of rejected) must grow. A trainer fed chosen and
rejected swapped passes a finite-loss check but fails this one. Small: SmolLM2-135M, LoRA, CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PAIRS = [
    ("Name a primary colour.", "Blue is a primary colour.", "I will not talk about colours today."),
    ("Say hello politely.", "Hello, it is nice to meet you.", "Go away, I am busy right now."),
    ("What is two plus two?", "Two plus two is four.", "Numbers are boring, ask something else."),
]


def _completion_logprob(model: object, tok: object, prompt: str, completion: str) -> float:
    import torch

    p_ids = tok(prompt, return_tensors="pt").input_ids  # type: ignore[operator]
    full = tok(prompt + " " + completion, return_tensors="pt").input_ids  # type: ignore[operator]
    with torch.no_grad():
        logits = model(full).logits  # type: ignore[operator]
    logp = torch.log_softmax(logits[0, :-1].float(), dim=-1)
    targets = full[0, 1:]
    start = p_ids.shape[1] - 1
    return float(logp[start:].gather(1, targets[start:, None]).sum())


def _margins(model: object, tok: object) -> list[float]:
    return [_completion_logprob(model, tok, p, c) - _completion_logprob(model, tok, p, r) for p, c, r in PAIRS]


@pytest.mark.slow
@pytest.mark.model
def test_dpo_grows_the_implicit_reward_margin_of_the_training_pairs(tmp_path: Path) -> None:
    from peft import PeftModel

    from thoughttrace.align import load_config, train_dpo
    from thoughttrace.align.hf import load_causal_lm

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({
        "format_version": 1, "id": f"p{i}", "pair_format": "plain", "prompt": p, "chosen": c, "rejected": r,
        "provenance": {"conversation_id": "c", "message_id": f"m{i}", "guide": "thoughts", "rewriter": "test",
                       "reaction_labels": []}}) + "\n" for i, (p, c, r) in enumerate(PAIRS)), encoding="utf-8")
    cfg = load_config(max_steps=8, learning_rate=2e-3, per_device_train_batch_size=3, gradient_accumulation_steps=1,
                      max_length=64, warmup=0, lr_scheduler_type="constant", save_steps=1000, beta=0.1)
    summary = train_dpo([pairs], tmp_path / "run", cfg)
    base, tok = load_causal_lm(cfg.model)
    before = _margins(base, tok)
    tuned = PeftModel.from_pretrained(base, summary["output"])
    after = _margins(tuned, tok)
    gains = [a - b for a, b in zip(after, before)]
    assert sum(gains) / len(gains) > 0.5, (before, after)
    assert all(g > 0 for g in gains), (before, after)
