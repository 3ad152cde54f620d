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


@pytest.fixture
def fake_servers() -> Iterator[Callable[[int], list[tuple[subprocess.Popen[str], str]]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(n: int) -> list[tuple[subprocess.Popen[str], str]]:
        out = []
        for i in range(n):
            p = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--name", f"s{i}"],
                                 stdout=subprocess.PIPE, text=True, env=child_env())
            procs.append(p)
            assert p.stdout is not None
            out.append((p, p.stdout.readline().strip()))
        return out

    yield start
    for p in procs:
        p.kill()
        p.wait()
