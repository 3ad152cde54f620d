"""The backend interface: one required async method, optional capability methods.

A backend only talks to its model. Caching, retries, concurrency limits and usage accounting live in
`Model` (model.py), so every backend gets them the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import ClassVar

from .errors import CapabilityError
from .types import ChatMessage, Generation, GenerationConfig, LogprobResult, ScoreResult
from .usage import UsageTracker

CAPABILITIES = ("generate", "next_token_logprobs", "score")
#: which backends provide each optional capability (for error messages)
BACKENDS_WITH: dict[str, list[str]] = {
    "next_token_logprobs": ["local", "openai-compatible", "openai", "transformers", "scripted"],
    "score": ["local", "transformers", "openai-compatible (vLLM echo or llama.cpp grammar)", "scripted"],
}


class Backend(ABC):
    """Base class of every model backend."""

    #: short registry name, e.g. "local"
    kind: ClassVar[str] = "base"
    #: capabilities beyond `generate` this backend implements
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate"})

    def __init__(self, model_id: str, endpoint: str, max_connections: int = 4) -> None:
        self.model_id = model_id
        #: requests to the same endpoint share one concurrency limit
        self.endpoint = endpoint
        self.max_connections = max_connections
        #: the run's usage tracker, set by the Model that wraps this backend (per-endpoint accounting)
        self.usage: UsageTracker | None = None

    def fingerprint(self) -> str:
        """What identifies the weights for the cache key (model id plus checksum where known)."""
        return self.model_id

    @abstractmethod
    async def generate(self, messages: list[ChatMessage], config: GenerationConfig) -> Generation:
        """Generate the assistant's reply."""

    async def stream(self, messages: list[ChatMessage], config: GenerationConfig) -> AsyncIterator[str | Generation]:
        """Text deltas as they are generated, then the whole Generation (with usage) as the last item.

        The default generates first and yields the text in one piece: every backend can be streamed from.
        """
        gen = await self.generate(messages, config)
        yield gen.text
        yield gen

    async def next_token_logprobs(
        self, messages: list[ChatMessage], k: int, config: GenerationConfig
    ) -> LogprobResult:
        raise CapabilityError("next_token_logprobs", self.model_id, BACKENDS_WITH["next_token_logprobs"])

    async def score(self, prompt: str, continuations: list[str]) -> ScoreResult:
        raise CapabilityError("score", self.model_id, BACKENDS_WITH["score"])

    async def aclose(self) -> None:
        """Release connections or weights; the default has nothing to release."""
        return None
