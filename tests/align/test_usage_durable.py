"""A killed `align arena` run's model calls are counted by the resume (real subprocesses, real loopback server).

The judge is `openai-compatible/fake` on thoughttrace.llm.fakeserver (with latency, so the run can be killed
mid-way); the server's /stats is the count of requests really served. Every call is appended to OUT/usage.jsonl
as it happens, so after SIGTERM or SIGKILL and a resume the summary counts the calls of both runs: all the
served requests except at most the ones in flight at the kill (the backend's 8 connections).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from thoughttrace.align import load_questions
from thoughttrace.llm.fakeserver import kill_when_served, stats_of
from thoughttrace.llm.ledger import UsageLedger

IN_FLIGHT = 8  # openai-compatible backend's default connections: requests a kill can leave unanswered


@pytest.fixture
def server():
    proc = subprocess.Popen([sys.executable, "-m", "thoughttrace.llm.fakeserver", "--port", "0", "--latency-ms", "100"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _answers(tmp: Path) -> list[str]:
    out = []
    for name in ("base", "cand"):
        p = tmp / f"{name}.jsonl"
        p.write_text("".join(json.dumps({"question_id": q.question_id, "model": name, "generator": "test",
                                         "answer": f"{name} says {q.question_id}"}) + "\n"
                             for q in load_questions("demo")))
        out += ["--answers", str(p)]
    return out


def _cmd(tmp: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "thoughttrace", "align", "arena", "demo", *_answers(tmp), "--baseline", "base",
            "--judge", "openai-compatible/fake", "--base-url", url, "--no-cache", "--out", str(tmp / "out"),
            "--samples", "5", "--json"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_runs_calls_are_counted_by_the_resume(tmp_path: Path, server: str, sig: int) -> None:
    env = os.environ | {"THOUGHTTRACE_NO_CACHE": "1"}
    served_first = kill_when_served(_cmd(tmp_path, server), server, 12, sig, env)
    counted = UsageLedger(tmp_path / "out" / "usage.jsonl").total()["openai-compatible/fake"]["calls"]
    assert served_first - IN_FLIGHT <= counted <= served_first
    done = subprocess.run(_cmd(tmp_path, server), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    usage = json.loads((tmp_path / "out" / "results.json").read_text())["usage"]
    served = stats_of(server)["completions"]
    total = usage["cumulative"]["openai-compatible/fake"]["calls"]
    this_run = usage["models"]["openai-compatible/fake"]["calls"]
    assert usage["runs"] == 2 and total == counted + this_run
    assert served - IN_FLIGHT <= total <= served
    assert f"{total} calls over 2 runs" in usage["summary"] and f"{total} calls over 2 runs" in done.stderr


def test_a_runs_summary_supersedes_its_call_lines_and_a_cut_run_counts_its_calls(tmp_path: Path) -> None:
    from thoughttrace.llm import get_model
    from thoughttrace.llm.ledger import RunRecorder, calls_over_runs

    path = tmp_path / "usage.jsonl"
    UsageLedger(path).append({"scripted": {"calls": 4, "cache_hits": 1}})  # an older run: one summary line
    for finish in (False, True):
        model = get_model("scripted", cache=False, outputs=["x"])
        rec = RunRecorder(path)
        rec.attach(model)
        for _ in range(3):
            model.generate("hi")
        if finish:
            rec.finish({"scripted": model.usage.report().model_dump()})
    runs = UsageLedger(path).runs()
    assert [bool(r.get("interrupted")) for r in runs] == [False, False, True]
    total = UsageLedger(path).total()["scripted"]
    assert (total["calls"], total["runs"]) == (4 + 3 + 3, 3)
    assert calls_over_runs(UsageLedger(path).total(), 3).startswith("10 calls over 3 runs")
