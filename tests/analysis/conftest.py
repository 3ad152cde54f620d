"""Fixtures for the analysis tests: a deterministic fake embedder with planted geometry."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest


class HashEmbedder:
    """Unit vectors from a hash of the text: equal texts -> equal vectors, different texts ~orthogonal.

    `near` maps a text to another text whose vector it should sit close to (cosine ~0.9), which lets a test
    plant "small shift" pairs and check that the analysis finds them.
    """

    spec = "hash-test"

    def __init__(self, dim: int = 64, near: dict[str, str] | None = None) -> None:
        self.dim = dim
        self.near = near or {}
        self.calls = 0

    def _base(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim)
        return v / np.linalg.norm(v)

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        self.calls += 1
        rows = []
        for t in texts:
            v = self._base(t)
            if t in self.near:
                v = 0.95 * self._base(self.near[t]) + 0.05 * v
                v = v / np.linalg.norm(v)
            rows.append(v)
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def embedder_cls() -> type[HashEmbedder]:
    """The class itself, for tests that plant their own geometry."""
    return HashEmbedder
