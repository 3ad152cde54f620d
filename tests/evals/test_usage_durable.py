"""A killed eval's model calls are counted by the resume (real subprocesses, a real loopback server).

`eval next-message` predicts and judges with `openai-compatible/fake` on thoughttrace.llm.fakeserver (with
latency, so the run can be killed mid-way); the server's /stats counts the requests really served. Every call
is appended to OUT/usage.jsonl as it happens (a RunRecorder), so after SIGTERM or SIGKILL and a resume the
summary counts the calls of both runs: every served request except at most the ones in flight at the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from thoughttrace.llm.fakeserver import kill_when_served, stats_of
from thoughttrace.llm.ledger import UsageLedger

SPEC = "openai-compatible/fake"


@pytest.fixture
def server() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--port", "0", "--latency-ms", "40",
                             "--seed", "1"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _cmd(examples: Path, out: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "thoughttrace", "eval", "next-message", str(examples), "--model", SPEC,
            "--judge", SPEC, "--base-url", url, "--no-cache", "--no-embeddings", "--condition", "history",
            "--condition", "thoughts", "--concurrency", "2", "--out", str(out), "--json"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_evals_calls_are_counted_by_the_resume(tmp_path: Path, server: str, examples_path: Path,
                                                         sig: int) -> None:
    env = os.environ | {"THOUGHTTRACE_NO_CACHE": "1"}
    out = tmp_path / "out"
    served_first = kill_when_served(_cmd(examples_path, out, server), server, 15, sig, env)
    in_flight = stats_of(server)["max_in_flight"]  # what a kill can leave served but unanswered
    runs = UsageLedger(out / "usage.jsonl").runs()
    assert len(runs) == 1 and runs[0]["interrupted"]  # no summary line: counted from its call lines
    counted = UsageLedger(out / "usage.jsonl").total()[SPEC]["calls"]
    assert served_first - in_flight <= counted <= served_first

    done = subprocess.run(_cmd(examples_path, out, server), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    served = stats_of(server)["completions"]
    total = summary["usage"][SPEC]["calls"]
    this_run = summary["usage_this_run"][SPEC]["calls"]
    assert 0 < this_run < served and summary["usage_runs"] == 2 and total == counted + this_run
    assert served - in_flight <= total <= served
    line = f"{total} calls over 2 runs"
    assert summary["usage_summary"].startswith(line)
    assert line in done.stderr and line in (out / "summary.md").read_text()


def test_kill_when_served_refuses_a_run_that_finished_instead_of_being_killed(tmp_path):
    # a run that exits 0 on the signal was not killed mid-run: a durability test built on it would prove nothing
    from thoughttrace.llm.fakeserver import kill_when_served

    server = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver"], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        # the handler is set before the one request, so the signal (sent once it is served) finds it
        script = ("import json, signal, sys, time, urllib.request\n"
                  "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
                  "body = json.dumps({'model': 'fake', 'messages': [{'role': 'user', 'content': 'hi'}]}).encode()\n"
                  f"urllib.request.urlopen(urllib.request.Request('{url}/chat/completions', body, "
                  "{'Content-Type': 'application/json'})).read()\n"
                  "time.sleep(30)\n")
        with pytest.raises(RuntimeError, match="finished before the signal"):
            kill_when_served([sys.executable, "-c", script], url, 1, sig=signal.SIGTERM)
    finally:
        server.kill()
