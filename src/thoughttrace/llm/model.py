"""`Model`: what the rest of the package calls. Wraps a backend with cache, limits, retries and usage.

Async first (`agenerate`, `anext_token_logprobs`, `ascore`); the sync methods run the same coroutines on
a private event loop thread, so scripts and notebooks need no asyncio.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .base import BACKENDS_WITH, Backend
from .cache import ResponseCache, cache_key
from .errors import CacheMissError, CapabilityError, LLMError, RetriesExhaustedError, TransientError
from .types import (
    Generation,
    GenerationConfig,
    LogprobResult,
    MessagesLike,
    ScoreResult,
    as_messages,
)
from .usage import UsageTracker

T = TypeVar("T")


#: bump when a backend's score of the same text changes on purpose (part of the score cache key)
SCORING_VERSION = 2


class _EndpointLimits:
    """One semaphore per (endpoint, event loop): the limit holds across every Model of an endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sems: dict[tuple[str, int], asyncio.Semaphore] = {}

    def get(self, endpoint: str, limit: int) -> asyncio.Semaphore:
        key = (endpoint, id(asyncio.get_running_loop()))
        with self._lock:
            sem = self._sems.get(key)
            if sem is None:
                sem = self._sems[key] = asyncio.Semaphore(limit)
            return sem


_LIMITS = _EndpointLimits()


class _LoopThread:
    """A daemon thread running an event loop, for the sync wrappers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="thoughttrace-llm")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class Model:
    """A backend plus the cross-cutting machinery every model call needs."""

    def __init__(
        self,
        backend: Backend,
        *,
        cache: ResponseCache | None = None,
        offline: bool = False,
        usage: UsageTracker | None = None,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        spec: str | None = None,
    ) -> None:
        if offline and cache is None:
            raise LLMError("offline mode replays from a cache: pass --cache FILE (or enable the cache)")
        self.backend = backend
        self.cache = cache
        self.offline = offline
        self.usage = usage or UsageTracker()
        backend.usage = self.usage
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.spec = spec or backend.model_id
        self._runner: _LoopThread | None = None
        self._runner_lock = threading.Lock()

    # -- introspection -------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.backend.model_id

    @property
    def capabilities(self) -> frozenset[str]:
        return self.backend.capabilities

    def supports(self, capability: str) -> bool:
        return capability in self.backend.capabilities

    def require(self, capability: str) -> None:
        """Fail at once, naming the capability and the backends that have it."""
        if not self.supports(capability):
            raise CapabilityError(capability, self.model_id, BACKENDS_WITH.get(capability, []))

    # -- the machinery -------------------------------------------------------------------------
    def _key(self, kind: str, payload: dict[str, Any]) -> str:
        return cache_key({"model": self.backend.fingerprint(), "kind": kind, **payload})

    def _lookup(self, key: str, kind: str) -> dict[str, Any] | None:
        """The cached value, or None; offline, a miss is an error instead of a model call."""
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.record_hit(self.model_id)
                return hit
        if self.offline:
            raise CacheMissError(
                f"offline replay: no cached {kind} for model '{self.model_id}' and this request; "
                "run once online with the same cache file, or drop --offline"
            )
        return None

    async def _backoff(self, attempt: int, exc: TransientError) -> None:
        """Sleep before the next attempt, or raise once the retries are spent."""
        if attempt > self.max_retries:
            self.usage.record_error(self.model_id)
            raise RetriesExhaustedError(attempt, exc) from exc
        self.usage.record_retry(self.model_id)
        await asyncio.sleep(self.backoff_seconds * (2 ** (attempt - 1)) * (0.5 + random.random()))

    async def _call(
        self, kind: str, payload: dict[str, Any], call: Callable[[], Awaitable[Any]], decode: Callable[[dict[str, Any]], T]
    ) -> T:
        key = self._key(kind, payload)
        hit = self._lookup(key, kind)
        if hit is not None:
            result = decode(hit)
            result.cached = True  # type: ignore[attr-defined]
            return result
        sem = _LIMITS.get(self.backend.endpoint, self.backend.max_connections)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with sem:
                    result = await call()
                break
            except TransientError as exc:
                await self._backoff(attempt, exc)
            except LLMError:
                self.usage.record_error(self.model_id)
                raise
        self.usage.record_call(self.model_id, result.usage)
        if self.cache is not None:
            self.cache.put(key, self.model_id, kind, result.model_dump(mode="json", exclude={"cached"}))
        return result  # type: ignore[no-any-return]

    # -- async API -----------------------------------------------------------------------------
    async def agenerate(
        self, messages: MessagesLike, config: GenerationConfig | None = None, **overrides: Any
    ) -> Generation:
        """Generate a reply; `overrides` are GenerationConfig fields (temperature=..., max_tokens=...)."""
        cfg = _config(config, overrides)
        msgs = as_messages(messages)
        payload = {"messages": [m.model_dump() for m in msgs], "config": cfg.cache_fields()}
        return await self._call(
            "generate", payload, lambda: self.backend.generate(msgs, cfg), Generation.model_validate
        )

    async def astream(
        self, messages: MessagesLike, config: GenerationConfig | None = None, *,
        on_final: Callable[[Generation], None] | None = None, **overrides: Any
    ) -> AsyncGenerator[str, None]:
        """Yield the reply's text as it is generated; cached, counted and retried like `agenerate`.

        Shares its cache entries with `agenerate` (a hit yields the whole text at once). A transient error
        is retried only before the first piece of text; after that it propagates. `on_final` receives the
        closing record (usage, `finish_reason`: None when the stream ended without saying why it stopped).
        """
        cfg = _config(config, overrides)
        msgs = as_messages(messages)
        key = self._key("generate", {"messages": [m.model_dump() for m in msgs], "config": cfg.cache_fields()})
        hit = self._lookup(key, "generate")
        if hit is not None:
            cached = Generation.model_validate(hit)
            yield cached.text
            if on_final is not None:
                on_final(cached)
            return
        sem = _LIMITS.get(self.backend.endpoint, self.backend.max_connections)
        attempt = 0
        final: Generation | None = None
        while final is None:
            attempt += 1
            started = False
            try:
                async with sem:
                    async for item in self.backend.stream(msgs, cfg):
                        if isinstance(item, Generation):
                            final = item
                        elif item:
                            started = True
                            yield item
            except TransientError as exc:
                if started:
                    self.usage.record_error(self.model_id)
                    raise
                await self._backoff(attempt, exc)
                continue
            except LLMError:
                self.usage.record_error(self.model_id)
                raise
            if final is None:
                raise LLMError(f"the stream from '{self.model_id}' ended without its final record")
        self.usage.record_call(self.model_id, final.usage)
        if on_final is not None:
            on_final(final)
        if self.cache is not None:
            self.cache.put(key, self.model_id, "generate", final.model_dump(mode="json", exclude={"cached"}))

    async def anext_token_logprobs(
        self, messages: MessagesLike, k: int = 5, config: GenerationConfig | None = None, **overrides: Any
    ) -> LogprobResult:
        """Top-k log-probabilities of the first token of the assistant's reply."""
        self.require("next_token_logprobs")
        cfg = _config(config, overrides)
        msgs = as_messages(messages)
        payload = {"messages": [m.model_dump() for m in msgs], "k": k, "config": cfg.cache_fields()}
        return await self._call(
            "next_token_logprobs",
            payload,
            lambda: self.backend.next_token_logprobs(msgs, k, cfg),
            LogprobResult.model_validate,
        )

    async def ascore(self, prompt: str, continuations: list[str]) -> ScoreResult:
        """log P(continuation | prompt) for each continuation (raw text, no chat template)."""
        self.require("score")
        # "scoring" 2: llama.cpp scores the canonical tokens (1 followed a grammar's spelling; never reuse those)
        payload = {"prompt": prompt, "continuations": list(continuations), "scoring": SCORING_VERSION}
        return await self._call(
            "score", payload, lambda: self.backend.score(prompt, list(continuations)), ScoreResult.model_validate
        )

    async def aclose(self) -> None:
        await self.backend.aclose()

    # -- sync wrappers -------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run on the model's private loop thread; works from Jupyter or any thread with its own loop.

        Only a call from the private loop itself would deadlock, and is refused.
        """
        with self._runner_lock:
            if self._runner is None:
                self._runner = _LoopThread()
        if threading.current_thread() is self._runner.thread:
            coro.close()
            raise LLMError("called a sync Model method from inside the model's own event loop; await the a* method")
        return self._runner.run(coro)

    def generate(self, messages: MessagesLike, config: GenerationConfig | None = None, **overrides: Any) -> Generation:
        return self._run(self.agenerate(messages, config, **overrides))

    def next_token_logprobs(
        self, messages: MessagesLike, k: int = 5, config: GenerationConfig | None = None, **overrides: Any
    ) -> LogprobResult:
        return self._run(self.anext_token_logprobs(messages, k, config, **overrides))

    def score(self, prompt: str, continuations: list[str]) -> ScoreResult:
        return self._run(self.ascore(prompt, continuations))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run any coroutine that uses this model on its private loop (for sync callers)."""
        return self._run(coro)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self.aclose())
        else:
            asyncio.run(self.aclose())

    def __repr__(self) -> str:
        return f"Model({self.spec!r}, capabilities={sorted(self.capabilities)})"


def _config(config: GenerationConfig | None, overrides: dict[str, Any]) -> GenerationConfig:
    cfg = config or GenerationConfig()
    if overrides:
        if "stop" in overrides and overrides["stop"] is not None:
            overrides = {**overrides, "stop": tuple(overrides["stop"])}
        cfg = cfg.model_copy(update=overrides)
    return cfg
