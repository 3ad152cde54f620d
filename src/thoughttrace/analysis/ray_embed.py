"""The embedding step of `analyze` on Ray Data workers (`analyze --engine ray`).

Why `map_batches` with our `Embedder` and not a `ray.data.llm` processor: those processors run chat or
completion models; sentence embeddings need the same model, normalisation and vector cache as the local
engine (`thoughttrace.llm.embeddings`), so each worker builds that Embedder once (an actor) and encodes
its batches of texts. Every other step of `analyze` streams the file once on the driver; only the distinct
texts of the sampled pairs (at most `--max-pairs` per kind) go out and their vectors come back.

Resume: the vector cache is the record of finished work. A worker reads it before encoding, so a rerun
with the same cache file encodes nothing. It is SQLite (WAL): on a cluster each node keeps its own file at
the `--embedding-cache` path on its local disk (not NFS), and a rerun encodes only what that node has not.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: texts per Ray batch: large, because Ray's per-task overhead dwarfs encoding a few sentences
BATCH_TEXTS = 512


class _EmbedWorker:
    """A Ray actor: one Embedder (model + vector cache) for its life, one batch of texts per call."""

    def __init__(self, spec: str, cache: bool | str) -> None:
        from thoughttrace.llm.embeddings import get_embedder

        self.embedder = get_embedder(spec, cache=cache)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        before = dict(self.embedder.stats)
        vecs = self.embedder.embed([str(t) for t in batch["text"]])
        n = len(batch["i"])
        counts = np.zeros((n, 2), dtype=np.int64)
        counts[0] = [self.embedder.stats["encoded"] - before["encoded"],
                     self.embedder.stats["cache_hits"] - before["cache_hits"]]
        return {"i": np.asarray(batch["i"]), "vec": vecs, "counts": counts}


class RayEmbedder:
    """`embed(texts)` like `Embedder.embed`, computed by `workers` Ray actors; describes itself the same way."""

    def __init__(self, spec: str, *, cache: bool | str | Path = True, workers: int = 2,
                 ray_address: str | None = None) -> None:
        from thoughttrace.llm.embeddings import Embedder, default_embedding_cache_path

        local = Embedder(spec)  # resolves the spec and fingerprints the weights; loads nothing
        self.spec, self.fingerprint = spec, local.fingerprint
        self.cache_arg: bool | str = str(Path(cache).resolve()) if isinstance(cache, str | Path) else cache
        path = Path(self.cache_arg) if isinstance(self.cache_arg, str) else (
            default_embedding_cache_path() if self.cache_arg else None)
        self.cache = _CacheInfo(path) if path else None
        self.workers, self.ray_address = workers, ray_address
        self.stats = {"texts": 0, "cache_hits": 0, "encoded": 0}

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        from thoughttrace.batch.engine import _ray

        texts = [t if isinstance(t, str) else str(t) for t in texts]
        self.stats["texts"] += len(texts)
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        _, data = _ray(self.ray_address, self.workers, 1.0)
        n_blocks = max(1, min(self.workers * 4, -(-len(texts) // BATCH_TEXTS)))
        ds = data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=n_blocks)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = ds.map_batches(_EmbedWorker, fn_constructor_kwargs={"spec": self.spec, "cache": self.cache_arg},
                                batch_size=BATCH_TEXTS, batch_format="numpy",
                                compute=data.ActorPoolStrategy(size=self.workers), num_cpus=1,
                                max_restarts=2, max_task_retries=2)
        out: np.ndarray | None = None
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            vecs = np.asarray(batch["vec"], dtype=np.float32)
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[np.asarray(batch["i"], dtype=np.int64)] = vecs
            counts = np.asarray(batch["counts"]).sum(axis=0)
            self.stats["encoded"] += int(counts[0])
            self.stats["cache_hits"] += int(counts[1])
        assert out is not None
        return out


class _CacheInfo:
    """What `describe(embedder)` reads of a vector cache: its path (the workers open the file themselves)."""

    def __init__(self, path: Path) -> None:
        self.path = path
