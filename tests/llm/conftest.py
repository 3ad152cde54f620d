"""Real model fixtures: SmolLM2 in-process and a real llama.cpp HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from thoughttrace.llm.server import LocalServer


@pytest.fixture(scope="session")
def llama_server_url() -> Iterator[str]:
    with LocalServer("smollm2", parallel=2) as url:
        yield url
