"""Embedding cosine: the cheap second metric beside every judge score.

The embedder itself lives in the model layer (`thoughttrace.llm.embeddings`); this wrapper makes it
optional (`--no-embeddings`, or the module/weights missing: the metric is then recorded as null and the
summary says so), thread-safe, and awaitable without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Embedder(Protocol):
    """`thoughttrace.llm.embeddings.Embedder`: pairwise cosine of a[i] and b[i]."""

    def cosine(self, a: Sequence[str], b: Sequence[str]) -> Any: ...


class EmbeddingMetric:
    """Cosine similarity through any object with `cosine(a, b)`; serialised by a lock."""

    def __init__(self, embedder: Embedder, name: str = "embeddings") -> None:
        self.embedder = embedder
        self.name = name
        self._lock = threading.Lock()

    def _cosine(self, a: str, b: str) -> float:
        with self._lock:
            return float(np.asarray(self.embedder.cosine([a], [b]), dtype=float).ravel()[0])

    async def acosine(self, a: str | None, b: str | None) -> float | None:
        if not a or not b or not a.strip() or not b.strip():
            return None
        return await asyncio.to_thread(self._cosine, a, b)


def load_metric(enabled: bool = True, embedder: Any = None) -> EmbeddingMetric | None:
    """The default embedder, an injected one (tests), or None when disabled or unavailable."""
    if embedder is not None:
        return EmbeddingMetric(embedder, name=type(embedder).__name__)
    if not enabled:
        return None
    try:
        from thoughttrace.llm.embeddings import get_embedder
    except ImportError as exc:
        warnings.warn(f"embedding metric disabled: {exc} (pass --no-embeddings to silence this)", stacklevel=2)
        return None
    try:
        emb = get_embedder()
    except Exception as exc:  # weights missing, optional package missing: the metric is optional
        warnings.warn(f"embedding metric disabled: {type(exc).__name__}: {exc}", stacklevel=2)
        return None
    return EmbeddingMetric(emb, name=str(getattr(emb, "name", type(emb).__name__)))
