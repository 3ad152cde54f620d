"""DPO training with TRL's DPOTrainer (optional LoRA via PEFT), configured by a YAML file.

The output directory holds: checkpoints (`checkpoint-N/`, resumable), `metrics.jsonl` (one row per
logging step: loss, rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies ...),
`metrics.png`, the final `adapter/` (or full model without LoRA) and `train_meta.json` (base model,
config, data hash) that `align answer --adapter` reads. On this machine the embedded SmolLM2 GGUF
trains on CPU; on a GPU the same command trains any transformers model (`--model` a dir or hub name).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .pairs import Pair
from .records import FORMAT_VERSION, AlignError, append_jsonl, read_models, read_resource, write_json

METRIC_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class DPOSettings(BaseModel):
    """Everything `align train` reads from its config file (unknown keys are an error, to catch typos)."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    model: str = "smollm2"
    beta: float = Field(default=0.1, gt=0)
    learning_rate: float = Field(default=5e-6, gt=0)
    num_train_epochs: float = Field(default=1, gt=0)
    max_steps: int = -1
    per_device_train_batch_size: int = Field(default=2, ge=1)
    gradient_accumulation_steps: int = Field(default=8, ge=1)
    max_length: int = Field(default=2048, ge=16)
    warmup: float = Field(default=0.1, ge=0, description="< 1: share of the steps; >= 1: number of steps")
    lr_scheduler_type: str = "cosine"
    logging_steps: int = Field(default=1, ge=1)
    save_steps: int = Field(default=100, ge=1)
    save_total_limit: int | None = 2
    seed: int = 0
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    lora: LoraSettings = Field(default_factory=LoraSettings)


def default_config_text() -> str:
    return read_resource("resources/dpo_default.yaml")


def load_config(path: str | Path | None = None, **overrides: Any) -> DPOSettings:
    """The default config, updated by a YAML file and then by explicit overrides (None values ignored)."""
    data: dict[str, Any] = yaml.safe_load(default_config_text())
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise AlignError(f"{p}: no such config file (print the default with `thoughttrace align train "
                             "--print-config`)")
        try:
            user = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise AlignError(f"{p}: not valid YAML ({exc})") from exc
        if not isinstance(user, dict):
            raise AlignError(f"{p}: expected a mapping of settings")
        lora = {**data.get("lora", {}), **(user.pop("lora", None) or {})}
        data.update(user)
        data["lora"] = lora
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DPOSettings.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise AlignError(f"config: field '{'.'.join(str(x) for x in e['loc'])}': {e['msg']}") from exc


def load_pairs(paths: list[str | Path]) -> list[Pair]:
    pairs: list[Pair] = []
    for p in paths:
        pairs.extend(read_models(p, Pair, "preference pair"))
    if not pairs:
        raise AlignError("no preference pairs to train on; build them with `thoughttrace align pairs`")
    formats = {p.pair_format for p in pairs}
    if len(formats) > 1:
        raise AlignError("the pair files mix conversational and plain pairs; rebuild them in one format")
    return pairs


def _file_hash(paths: list[str | Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def _metrics_callback(path: Path) -> Any:
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):  # type: ignore[misc]
        """Appends each logged step's DPO metrics to metrics.jsonl (survives a crash; resume appends)."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not logs or "loss" not in logs:
                return
            row = {"format_version": FORMAT_VERSION, "step": int(state.global_step), "epoch": state.epoch}
            row.update({k: float(v) for k, v in logs.items() if isinstance(v, int | float)})
            append_jsonl(row, path)

    return MetricsLog()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    import json

    p = Path(path)
    if not p.exists():
        return []
    rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    last: dict[int, dict[str, Any]] = {}
    for r in rows:  # a resumed run may log a step again; keep the latest
        last[int(r["step"])] = r
    return [last[k] for k in sorted(last)]


def plot_metrics(rows: list[dict[str, Any]], out: str | Path) -> Path:
    """Loss, rewards (chosen/rejected/margin) and accuracy against the step, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].plot(steps, [r.get("loss", math.nan) for r in rows], marker="o")
    axes[0].set_title("DPO loss")
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins"):
        axes[1].plot(steps, [r.get(key, math.nan) for r in rows], marker="o", label=key.split("/")[1])
    axes[1].set_title("implicit rewards")
    axes[1].legend()
    axes[2].plot(steps, [r.get("rewards/accuracies", math.nan) for r in rows], marker="o")
    axes[2].set_ylim(-0.05, 1.05)
    axes[2].set_title("reward accuracy")
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _dataset(pairs: list[Pair]) -> Any:
    from datasets import Dataset

    return Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs])


def train_dpo(pair_files: list[str | Path], out_dir: str | Path, settings: DPOSettings, *,
              resume: bool = False) -> dict[str, Any]:
    """Train and save; returns the run summary also written to train_meta.json."""
    import torch
    from trl import DPOConfig, DPOTrainer

    from .hf import load_causal_lm

    out = Path(out_dir)
    checkpoints = sorted(out.glob("checkpoint-*")) if out.exists() else []
    if out.exists() and any(out.iterdir()) and not resume:
        raise AlignError(f"{out} is not empty; pass --resume to continue that run, or choose a new --out")
    pairs = load_pairs(pair_files)
    model, tok = load_causal_lm(settings.model)
    on_gpu = torch.cuda.is_available()
    bf16 = (on_gpu and torch.cuda.is_bf16_supported()) if settings.bf16 == "auto" else bool(settings.bf16)
    args = DPOConfig(
        output_dir=str(out), beta=settings.beta, learning_rate=settings.learning_rate,
        num_train_epochs=settings.num_train_epochs, max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, max_length=settings.max_length,
        warmup_steps=settings.warmup, lr_scheduler_type=settings.lr_scheduler_type,
        logging_steps=settings.logging_steps, save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit, seed=settings.seed, bf16=bf16, use_cpu=not on_gpu,
        gradient_checkpointing=settings.gradient_checkpointing, report_to="none", disable_tqdm=False,
    )
    peft_config = None
    if settings.lora.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(r=settings.lora.r, lora_alpha=settings.lora.alpha, lora_dropout=settings.lora.dropout,
                                 target_modules=settings.lora.target_modules, task_type="CAUSAL_LM")
    metrics_path = out / "metrics.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    trainer = DPOTrainer(model=model, args=args, train_dataset=_dataset(pairs), processing_class=tok,
                         peft_config=peft_config, callbacks=[_metrics_callback(metrics_path)])
    trainer.train(resume_from_checkpoint=bool(resume and checkpoints) or None)
    final_dir = out / ("adapter" if settings.lora.enabled else "model")
    trainer.save_model(str(final_dir))
    tok.save_pretrained(str(final_dir))
    rows = read_metrics(metrics_path)
    if not rows:
        raise AlignError("training logged no metrics; set logging_steps <= max_steps")
    if not all(math.isfinite(r["loss"]) for r in rows):
        raise AlignError("the DPO loss became NaN or infinite; lower the learning rate or check the pairs")
    plot_metrics(rows, out / "metrics.png")
    summary = {
        "format_version": FORMAT_VERSION, "base_model": settings.model, "lora": settings.lora.enabled,
        "output": str(final_dir), "steps": int(trainer.state.global_step), "pairs": len(pairs),
        "pair_files": [str(p) for p in pair_files], "pairs_sha256": _file_hash(pair_files),
        "final_metrics": {k: rows[-1].get(k) for k in METRIC_KEYS}, "config": settings.model_dump(mode="json"),
        "resumed_from": str(checkpoints[-1]) if resume and checkpoints else None,
    }
    write_json(summary, out / "train_meta.json")
    return summary
