"""Loading a causal LM with transformers for training and adapter answers (heavy imports stay inside).

`model` may name an offline registry model (`smollm2`, ...), a `.gguf` file, a local directory or a hub
name. A GGUF is dequantised to full precision by transformers, but the loaded model still carries a
GGUF quantizer flag that makes the Trainer refuse it; the weights are plain tensors, so the flag is
dropped (see `_drop_gguf_flag`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .records import AlignError


def resolve_model_path(model: str) -> tuple[str, str | None]:
    """(directory or hub name, gguf file name or None) for a model string."""
    p = Path(model)
    if p.suffix == ".gguf":
        if not p.exists():
            raise AlignError(f"{p}: no such GGUF file")
        return str(p.parent), p.name
    if p.exists():
        return str(p), None
    from thoughttrace.llm.weights import ALIASES, KNOWN, resolve_weights

    if model in KNOWN or model in ALIASES:
        w = resolve_weights(model)
        return str(w.parent), w.name
    return model, None  # a hub name (needs network or a local HF cache)


def _drop_gguf_flag(model: Any) -> None:
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    path, gguf = resolve_model_path(model)
    tok = AutoTokenizer.from_pretrained(path, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def cpu_threads() -> int:
    """Torch CPU threads: THOUGHTTRACE_TORCH_THREADS, else one fewer than the cores.

    On a shared machine every thread beyond the free cores makes all of them wait: measured here with
    2 cores and other jobs running, SmolLM2 generation ran at 7.5 tok/s on 1 thread and 1 tok/s on 2.
    """
    env = os.environ.get("THOUGHTTRACE_TORCH_THREADS")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 2) - 1)


def load_causal_lm(model: str, dtype: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer); fp32 on CPU, bf16 where a CUDA GPU supports it (dtype='auto')."""
    import torch
    from transformers import AutoModelForCausalLM

    if not torch.cuda.is_available():
        torch.set_num_threads(cpu_threads())

    path, gguf = resolve_model_path(model)
    if dtype == "auto":
        torch_dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    else:
        torch_dtype = getattr(torch, dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if gguf:
        kwargs["gguf_file"] = gguf
    try:
        lm = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise AlignError(f"cannot load model {model!r} ({exc}); give a .gguf path, a local model directory, a "
                         "known local name (smollm2) or a hub name reachable from this machine") from exc
    _drop_gguf_flag(lm)
    if torch.cuda.is_available():
        lm = lm.to("cuda")  # type: ignore[arg-type]
    return lm, load_tokenizer(model)
