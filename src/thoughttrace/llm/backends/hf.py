"""`transformers:PATH`: Hugging Face transformers on the CPU or a GPU, with EXACT continuation log-probs.

PATH is a model directory or hub name, a .gguf file (transformers de-quantises it), a registry name
(`smollm2`, `qwen0.5b`), or a PEFT adapter directory (its adapter_config.json names the base model; a
`thoughttrace_base.json` beside it may name a base .gguf). Model loading is lazy and runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, ClassVar

from ..base import Backend
from ..errors import ConfigurationError, MissingDependencyError
from ..types import ChatMessage, Generation, GenerationConfig, LogprobResult, ScoreResult, TokenLogprob, Usage
from ..weights import KNOWN, checksum_of, resolve_weights


def split_model_path(spec: str) -> tuple[str, str | None]:
    """(directory or hub name, gguf file name or None) for what transformers' from_pretrained takes."""
    if spec in KNOWN or spec in {"default", "qwen"}:
        path = resolve_weights(spec)
        return str(path.parent), path.name
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.exists():
            raise ConfigurationError(f"{p} does not exist; check the path")
        return str(p.parent), p.name
    return spec, None


class TransformersBackend(Backend):
    kind: ClassVar[str] = "transformers"
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate", "next_token_logprobs", "score"})

    def __init__(self, spec: str, *, device: str | None = None, dtype: str = "auto", max_connections: int = 1) -> None:
        super().__init__(model_id=f"transformers:{spec}", endpoint=f"transformers:{spec}", max_connections=max_connections)
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            base, gguf = split_model_path(self.spec)
            self._fingerprint = f"gguf:{checksum_of(Path(base) / gguf)}" if gguf else self.model_id
        return self._fingerprint

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:
                raise MissingDependencyError("transformers", "transformers") from exc
            adapter_cfg = Path(self.spec) / "adapter_config.json"
            adapter_dir: str | None = None
            base_spec = self.spec
            if adapter_cfg.exists():
                adapter_dir = self.spec
                hint = Path(self.spec) / "thoughttrace_base.json"
                base_spec = (json.loads(hint.read_text())["base"] if hint.exists()
                             else json.loads(adapter_cfg.read_text())["base_model_name_or_path"])
            base, gguf = split_model_path(base_spec)
            kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
            tok = AutoTokenizer.from_pretrained(base, **kwargs)
            model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=self.dtype if not gguf else torch.float32, **kwargs)
            if adapter_dir:
                try:
                    from peft import PeftModel
                except ImportError as exc:
                    raise MissingDependencyError("peft", "align") from exc
                model = PeftModel.from_pretrained(model, adapter_dir)
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            model.to(device)
            model.eval()
            self._loaded = (tok, model)
            return self._loaded

    def _chat_ids(self, messages: list[ChatMessage]) -> Any:
        tok, model = self._load()
        enc = tok.apply_chat_template(
            [m.model_dump() for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return enc["input_ids"].to(model.device)

    def _generate_sync(self, messages: list[ChatMessage], config: GenerationConfig) -> Generation:
        import torch

        tok, model = self._load()
        ids = self._chat_ids(messages)
        torch.manual_seed(config.seed + config.sample_index)
        kwargs: dict[str, Any] = {"max_new_tokens": config.max_tokens, "pad_token_id": tok.eos_token_id}
        if config.temperature > 0:
            kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            out = model.generate(ids, **kwargs)
        new = out[0, ids.shape[1]:]
        text = tok.decode(new, skip_special_tokens=True)
        for stop in config.stop:
            if stop in text:
                text = text.split(stop, 1)[0]
        return Generation(text=text, usage=Usage(prompt_tokens=int(ids.shape[1]), completion_tokens=int(new.shape[0])),
                          finish_reason="stop" if new.shape[0] < config.max_tokens else "length")

    def _next_sync(self, messages: list[ChatMessage], k: int) -> LogprobResult:
        import torch

        tok, model = self._load()
        ids = self._chat_ids(messages)
        with torch.no_grad():
            logits = model(ids).logits[0, -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        values, indices = torch.topk(logp, k)
        top = [TokenLogprob(token=tok.decode([int(i)]), logprob=float(v)) for v, i in zip(values, indices)]
        return LogprobResult(top=top, usage=Usage(prompt_tokens=int(ids.shape[1]), completion_tokens=1))

    def _score_sync(self, prompt: str, continuations: list[str]) -> ScoreResult:
        import torch

        tok, model = self._load()
        prompt_ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"][0]
        out, used = [], 0
        for cont in continuations:
            cont_ids = tok(cont, return_tensors="pt", add_special_tokens=False)["input_ids"][0]
            ids = torch.cat([prompt_ids, cont_ids]).unsqueeze(0).to(model.device)
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
            n = prompt_ids.shape[0]
            positions = torch.arange(n - 1, ids.shape[1] - 1)
            out.append(float(logp[positions, ids[0, n:]].sum()))
            used += int(ids.shape[1])
        return ScoreResult(logprobs=out, usage=Usage(prompt_tokens=used))

    async def generate(self, messages: list[ChatMessage], config: GenerationConfig) -> Generation:
        return await asyncio.to_thread(self._generate_sync, messages, config)

    async def next_token_logprobs(self, messages: list[ChatMessage], k: int, config: GenerationConfig) -> LogprobResult:
        return await asyncio.to_thread(self._next_sync, messages, k)

    async def score(self, prompt: str, continuations: list[str]) -> ScoreResult:
        return await asyncio.to_thread(self._score_sync, prompt, continuations)
