"""The inspect_ai tasks give the same predictions and scores as our eval, on the same model and items:
both talk to one local llama.cpp server (inspect through its OpenAI-compatible provider)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai", reason="pip install 'thoughttrace[inspect]'")


def test_the_task_samples_are_our_guarded_prompts_and_references(examples_path: Path) -> None:
    from thoughttrace.data import read_conversations
    from thoughttrace.evals import next_message as nm
    from thoughttrace.evals.inspect_tasks import next_message
    from thoughttrace.evals.transcript import ClipConfig

    convs = {c.id: c for c in read_conversations(examples_path)}
    items = nm.extract_items(list(convs.values()), ["reaction+reason"])
    task = next_message(file=str(examples_path), condition="reaction+reason")
    assert len(task.dataset) == len(items)
    for sample, item in zip(task.dataset, items):
        ours = nm.build_prompt(convs[item.conversation_id], item, ClipConfig())
        assert [m.content for m in sample.input] == [m["content"] for m in ours]  # type: ignore[union-attr]
        assert sample.target == item.reference


class _Recorder:
    """A fake OpenAI-compatible server in a thread that keeps every request body (no model)."""

    def __init__(self) -> None:
        import asyncio
        import threading

        from thoughttrace.llm.fakeserver import FakeOpenAIServer

        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Recording(FakeOpenAIServer):
            def answer(self, body: dict[str, Any]) -> dict[str, Any]:
                bodies.append(body)
                out = super().answer(body)
                judge = "Score: N" in "\n".join(m["content"] for m in body["messages"])
                out["choices"][0]["message"]["content"] = "Close.\nScore: 40" if judge else "Could you say more?"
                out["usage"]["total_tokens"] = out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
                out["created"] = 0
                return out

        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start() -> None:
            server = await asyncio.start_server(Recording().handle, "127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
            ready.set()

        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(start(), self.loop)
        ready.wait(10)


def test_inspect_and_our_cli_send_the_same_request_bodies(examples_path: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Same messages AND the same sampling fields (max_tokens, temperature, top_p, seed, stop), body for body:
    what a server sees cannot tell the two clients apart (inspect once left out top_p)."""
    import json

    from inspect_ai import eval as inspect_eval

    from thoughttrace.evals.inspect_tasks import next_message

    rec = _Recorder()
    ours = _ours(examples_path, rec.url, tmp_path, "reaction", 2)
    mine = sorted(json.dumps({**b, "model": "fake"}, sort_keys=True) for b in rec.bodies)
    rec.bodies.clear()
    monkeypatch.setenv("LLAMACPP_BASE_URL", rec.url)
    monkeypatch.setenv("LLAMACPP_API_KEY", "x")
    (log,) = inspect_eval(next_message(file=str(examples_path), condition="reaction", limit=2),
                          model="openai-api/llamacpp/fake", log_dir=str(tmp_path / "logs"), display="none")
    theirs = sorted(json.dumps({**b, "model": "fake"}, sort_keys=True) for b in rec.bodies)
    assert log.status == "success" and len(mine) == 2 * 3  # a prediction and the judge's two orders, per item
    assert mine == theirs
    assert {s.id: next(iter(s.scores.values())).value for s in log.samples or []} == {  # type: ignore[union-attr]
        k: r["score"] for k, r in ours.items()}


@pytest.fixture(scope="module")
def server_url() -> Any:
    from thoughttrace.llm.server import LocalServer

    with LocalServer("smollm2", parallel=1, threads=1, reproducible=True) as url:
        yield url


def _ours(examples_path: Path, url: str, tmp_path: Path, condition: str, limit: int) -> dict[str, dict[str, Any]]:
    import asyncio

    from thoughttrace.data import read_conversations
    from thoughttrace.evals import ItemStore, Judge, NextMessageEval
    from thoughttrace.llm import get_model

    model = get_model("openai-compatible/smollm2", base_url=url, cache=False)
    ev = NextMessageEval(model, Judge(model, "message_similarity"), embeddings=None)
    store = ItemStore(tmp_path / "items.jsonl")
    asyncio.run(ev.arun(read_conversations(examples_path), store, [condition], limit=limit))
    return {f"{r['conversation_id']}|{r['message_id']}|{condition}": r for r in store.records()}


@pytest.mark.model
@pytest.mark.slow
def test_next_message_task_matches_our_eval(examples_path: Path, server_url: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from inspect_ai import eval as inspect_eval

    from thoughttrace.evals.inspect_tasks import next_message

    ours = _ours(examples_path, server_url, tmp_path, "reaction", 2)
    monkeypatch.setenv("LLAMACPP_BASE_URL", server_url)
    monkeypatch.setenv("LLAMACPP_API_KEY", "not-needed")
    (log,) = inspect_eval(next_message(file=str(examples_path), condition="reaction", limit=2),
                          model="openai-api/llamacpp/smollm2", log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success" and log.samples is not None and len(log.samples) == 2
    for s in log.samples:
        rec = ours[str(s.id)]
        sc = next(iter(s.scores.values()))  # type: ignore[union-attr]
        print(f"{s.id}: inspect {sc.value} / ours {rec['score']}; same prediction: {sc.answer == rec['prediction']}")
        assert sc.answer == rec["prediction"], s.id
        theirs = float(sc.value)  # type: ignore[arg-type]
        if rec["score"] is None:
            assert math.isnan(theirs)
        else:
            assert theirs == pytest.approx(rec["score"])


@pytest.mark.model
def test_the_inspect_cli_runs_the_task(examples_path: Path, server_url: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    task = Path(__file__).parents[2] / "src" / "thoughttrace" / "evals" / "inspect_tasks.py"
    env = {**os.environ, "LLAMACPP_BASE_URL": server_url, "LLAMACPP_API_KEY": "x"}
    inspect_bin = Path(sys.executable).with_name("inspect")
    r = subprocess.run([str(inspect_bin), "eval", f"{task}@thought_inference", "-T",
                        f"file={examples_path}", "-T", "limit=1", "--model", "openai-api/llamacpp/smollm2",
                        "--log-dir", str(tmp_path / "logs"), "--display", "none"],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list((tmp_path / "logs").glob("*.eval"))
