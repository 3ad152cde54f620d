"""Per-question accounting of model calls, so that concurrent questions sharing one Model are told apart."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from thoughttrace.llm import GenerationConfig, Model
from thoughttrace.llm.types import Generation, LogprobResult, MessagesLike, ScoreResult


class QuestionUsage(BaseModel):
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    max_prompt_tokens: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = {}

    @property
    def requests(self) -> int:
        """Model requests the question made, answered by the backend or the cache."""
        return self.calls + self.cache_hits

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class TrackedModel:
    """Wraps a Model and counts what one question (or one inferred thought, evals/inferred.py) spends.

    `calls` are backend calls made by this run, `cache_hits` requests the cache answered; tokens count
    both (a cached result keeps its original usage), so `requests` and tokens are the same on a rerun.
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.usage = QuestionUsage()
        self._started = time.perf_counter()

    def supports(self, capability: str) -> bool:
        return self.model.supports(capability)

    def __getattr__(self, name: str) -> Any:  # spec, capabilities, ... of the wrapped model
        return getattr(self.model, name)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def _record(self, kind: str, result: Any) -> None:
        u = self.usage
        u.by_kind[kind] = u.by_kind.get(kind, 0) + 1
        if getattr(result, "cached", False):
            u.cache_hits += 1
        else:
            u.calls += 1
        # a cached result keeps the usage of the call that made it: token counts describe the question's
        # cost whether or not this run paid it
        u.prompt_tokens += result.usage.prompt_tokens
        u.completion_tokens += result.usage.completion_tokens
        u.max_prompt_tokens = max(u.max_prompt_tokens, result.usage.prompt_tokens)

    async def agenerate(self, messages: MessagesLike, config: GenerationConfig | None = None, **kw: Any) -> Generation:
        out = await self.model.agenerate(messages, config, **kw)
        self._record("generate", out)
        return out

    async def anext_token_logprobs(self, messages: MessagesLike, k: int = 5, **kw: Any) -> LogprobResult:
        out = await self.model.anext_token_logprobs(messages, k, **kw)
        self._record("next_token_logprobs", out)
        return out

    async def ascore(self, prompt: str, continuations: list[str]) -> ScoreResult:
        out = await self.model.ascore(prompt, continuations)
        self._record("score", out)
        return out

    def finish(self) -> QuestionUsage:
        self.usage.seconds = time.perf_counter() - self._started
        return self.usage


def track(model: Model | TrackedModel) -> TrackedModel:
    return model if isinstance(model, TrackedModel) else TrackedModel(model)
