"""`scripted`: a fake backend for testing the logic around a model (never to claim the model path works).

Outputs come from a list (consumed in order, the last one repeating), a mapping (the first key found in
the last user message, or the whole prompt, wins), or a function of the messages. Every request is
recorded in `requests`, so tests can check what a model would have seen.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..base import Backend
from ..types import ChatMessage, Generation, GenerationConfig, LogprobResult, ScoreResult, TokenLogprob, Usage

OutputFn = Callable[[list[ChatMessage], GenerationConfig], str]
LogprobFn = Callable[[list[ChatMessage]], Mapping[str, float]]
ScoreFn = Callable[[str, str], float]


class ScriptedBackend(Backend):
    kind: ClassVar[str] = "scripted"
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate", "next_token_logprobs", "score"})

    def __init__(
        self,
        outputs: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
        fn: OutputFn | None = None,
        logprobs: LogprobFn | Mapping[str, float] | None = None,
        score_fn: ScoreFn | None = None,
        name: str = "scripted",
        default: str = "",
        max_connections: int = 64,
        delay: float = 0.0,
    ) -> None:
        super().__init__(model_id=name, endpoint=f"scripted:{name}:{id(self)}", max_connections=max_connections)
        self._outputs = list(outputs or [])
        self._mapping = dict(mapping or {})
        self._fn = fn
        self._logprobs = logprobs
        self._score_fn = score_fn
        self._default = default
        self._delay = delay
        self._index = 0
        self.requests: list[dict[str, Any]] = []

    def _text(self, messages: list[ChatMessage], config: GenerationConfig) -> str:
        if self._fn is not None:
            return self._fn(messages, config)
        prompt = "\n".join(m.content for m in messages)
        for key, value in self._mapping.items():
            if key in prompt:
                return value
        if self._outputs:
            text = self._outputs[min(self._index, len(self._outputs) - 1)]
            self._index += 1
            return text
        return self._default

    async def generate(self, messages: list[ChatMessage], config: GenerationConfig) -> Generation:
        if self._delay:
            import asyncio

            await asyncio.sleep(self._delay)
        self.requests.append({"kind": "generate", "messages": [m.model_dump() for m in messages]})
        text = self._text(messages, config)
        usage = Usage(prompt_tokens=sum(len(m.content.split()) for m in messages), completion_tokens=len(text.split()))
        return Generation(text=text, usage=usage, finish_reason="stop")

    async def stream(self, messages: list[ChatMessage], config: GenerationConfig) -> AsyncIterator[str | Generation]:
        """Word by word (with the configured delay between words), then the whole Generation."""
        import asyncio
        import re

        gen = await self.generate(messages, config)
        for piece in re.findall(r"\S+\s*|\s+", gen.text):
            yield piece
            if self._delay:
                await asyncio.sleep(self._delay)
        yield gen

    async def next_token_logprobs(
        self, messages: list[ChatMessage], k: int, config: GenerationConfig
    ) -> LogprobResult:
        self.requests.append({"kind": "next_token_logprobs", "messages": [m.model_dump() for m in messages]})
        if self._logprobs is None:
            probs: Mapping[str, float] = {self._text(messages, config)[:1] or " ": 1.0}
        elif callable(self._logprobs):
            probs = self._logprobs(messages)
        else:
            probs = self._logprobs
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:k]
        return LogprobResult(top=[TokenLogprob(token=t, logprob=math.log(max(p, 1e-300))) for t, p in top])

    async def score(self, prompt: str, continuations: list[str]) -> ScoreResult:
        self.requests.append({"kind": "score", "prompt": prompt, "continuations": continuations})
        if self._score_fn is None:
            return ScoreResult(logprobs=[-float(len(c)) for c in continuations])
        return ScoreResult(logprobs=[self._score_fn(prompt, c) for c in continuations])
