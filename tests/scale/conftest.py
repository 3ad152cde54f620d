"""Fixtures for scale tests: fake OpenAI-compatible servers as separate processes (killable by PID)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def completions(url: str) -> int:
    with urllib.request.urlopen(url + "/stats", timeout=5) as r:
        return int(json.loads(r.read())["completions"])


def server_stats(url: str) -> dict[str, int]:
    """The fake server's counters: completions, in_flight, max_in_flight (the most POSTs it held at once)."""
    with urllib.request.urlopen(url + "/stats", timeout=5) as r:
        return dict(json.loads(r.read()))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray (2 CPUs) for every Ray test of the session; run_batch joins it (start-up paid once)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 runtime_env={"env_vars": {"PYTHONPATH": SRC}})
    yield
    ray.shutdown()


@pytest.fixture
def fake_servers() -> Iterator[Callable[..., list[tuple[subprocess.Popen[str], str]]]]:
    """start(n, *options): n fake servers (thoughttrace.llm.fakeserver) as processes, with CLI options."""
    procs: list[subprocess.Popen[str]] = []

    def start(n: int, *options: str) -> list[tuple[subprocess.Popen[str], str]]:
        out = []
        for i in range(n):
            p = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--name", f"s{i}", *options],
                                 stdout=subprocess.PIPE, text=True, env=child_env())
            procs.append(p)
            assert p.stdout is not None
            out.append((p, p.stdout.readline().strip()))
        return out

    yield start
    for p in procs:
        p.kill()
        p.wait()
