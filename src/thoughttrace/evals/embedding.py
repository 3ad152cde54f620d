"""Embedding cosine: the cheap second metric beside every judge score.

The embedder itself lives in the model layer (`thoughttrace.llm.embeddings`); this wrapper makes it
optional (`--no-embeddings`: the metric is then recorded as null with that reason and the summary says
so; a missing model is an error naming the fix), thread-safe, and awaitable without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import threading
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
    """The default embedder, an injected one (tests), or None when the user turned the metric off.

    A metric the user asked for (the default) and that cannot be computed is an error that names the fix,
    never a silent drop: the embedding model is loaded here, before any item runs. With `--no-embeddings`
    the summary records the metric as null with that reason (`unavailable_metrics`).
    """
    if embedder is not None:
        return EmbeddingMetric(embedder, name=type(embedder).__name__)
    if not enabled:
        return None
    from thoughttrace.llm.embeddings import get_embedder
    from thoughttrace.llm.errors import ConfigurationError

    try:
        emb = get_embedder()
        emb.embed(["ready"])  # loads the model now: a broken install fails before any model call is paid for
    except ImportError as exc:
        raise ConfigurationError(
            f"the embedding-cosine metric needs {exc.name or 'sentence-transformers'}: `pip install -e '.[analysis]'`, "
            "or pass --no-embeddings to run without it") from exc
    except ConfigurationError as exc:
        raise ConfigurationError(f"{exc}; or pass --no-embeddings to run without the embedding-cosine metric") from exc
    return EmbeddingMetric(emb, name=str(getattr(emb, "name", type(emb).__name__)))


def unavailable_metrics(config: dict[str, Any], metric: str = "embedding_cosine") -> dict[str, str]:
    """Metrics a run recorded as null, each with its reason (summaries show these instead of dropping them)."""
    if config.get("embeddings") is None:
        return {metric: "turned off with --no-embeddings"}
    return {}
