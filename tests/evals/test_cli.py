from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thoughttrace.cli import evals as cli_evals
from thoughttrace.cli.main import cli
from thoughttrace.llm import get_model


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch, h: Any) -> list[Any]:
    """Every model string builds a scripted model that plays all roles (and records what it saw)."""
    built: list[Any] = []

    def user_or_default(messages: Any, cfg: Any) -> str:
        text = messages[-1].content
        if "Decide what you send next" in text:
            return json.dumps({"reason": "I need ideas", "message": "Give me three dinner ideas"})
        if "Write your private reaction" in text:
            return json.dumps({"reaction": "Useful list", "decision": "end"})
        return h.default_fn(messages, cfg)

    def build(spec: str, base_url: Any, cache_path: Any, no_cache: bool, offline: bool, **kw: Any) -> Any:
        cache: Any = False if no_cache else (Path(cache_path) if cache_path else True)
        m = get_model(f"scripted:{spec}", cache=cache, offline=offline, fn=user_or_default)
        built.append(m)
        return m

    monkeypatch.setattr(cli_evals, "build_model", build)
    return built


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_thought_inference_cli_writes_and_resumes(fake_models: list[Any], examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "ti"
    args = ["eval", "thought-inference", str(examples_path), "--model", "m1", "--judge", "j1", "--out", str(out),
            "--no-embeddings", "--limit", "6", "--with-next-message", "--concurrency", "2"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "| model | method | kind |" in r.stdout and "6 items computed" in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_items"] == 6 and summary["usage"]["m1"]["role"] == "model"
    assert summary["usage"]["j1"]["calls"] > 0 and summary["config"]["with_next_message"] is True
    lines = (out / "items.jsonl").read_text().splitlines()
    (out / "items.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])
    fake_models.clear()
    r2 = invoke(*args)
    assert r2.exit_code == 0 and "4 items computed, 2 resumed" in r2.stderr
    assert sum(m.usage.report().calls for m in fake_models) == 0
    assert sum(m.usage.report().cache_hits for m in fake_models) > 0


def test_same_spec_for_model_and_judge_is_built_once(fake_models: list[Any], examples_path: Path,
                                                      tmp_path: Path) -> None:
    r = invoke("eval", "thought-inference", str(examples_path), "-m", "same", "-j", "same", "--out",
               str(tmp_path), "--no-embeddings", "--limit", "1", "--json")
    assert r.exit_code == 0 and len(fake_models) == 1
    assert json.loads(r.stdout)["usage"]["same"]["role"] == "model+judge"


def test_next_message_cli_with_alias_and_two_models(fake_models: list[Any], examples_path: Path,
                                                    tmp_path: Path) -> None:
    r = invoke("eval", "next-message", str(examples_path), "-m", "a", "-m", "b", "-j", "j", "--condition",
               "history", "--condition", "thoughts", "--out", str(tmp_path), "--no-embeddings", "--limit", "2",
               "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert {(row["model"], row["condition"]) for row in summary["overall"]} == {
        ("scripted:a", "history"), ("scripted:a", "reaction"), ("scripted:b", "history"), ("scripted:b", "reaction")}
    assert summary["config"]["conditions"] == ["history", "reaction"] and len(summary["gains"]) == 2


def test_simulate_then_compare_then_second_judge(fake_models: list[Any], examples_path: Path, tmp_path: Path) -> None:
    sim = tmp_path / "sim.jsonl"
    r = invoke("simulate", "--task", "plan dinners", "--tasks-from", str(examples_path), "--model", "assistant",
               "--user-model", "user", "--turns", "3", "--out", str(sim))
    assert r.exit_code == 0, r.output
    convs = [json.loads(x) for x in sim.read_text().splitlines()]
    assert len(convs) == 4 and convs[0]["messages"][0]["reasons"][0]["content"] == "I need ideas"
    assert convs[0]["simulation"]["end_reason"] == "user ended"
    r2 = invoke("eval", "simulator", str(examples_path), str(sim), "--judge", "j", "--out", str(tmp_path / "cmp"),
                "--no-embeddings")
    assert r2.exit_code == 0, r2.output
    assert "| metric | real | simulated |" in r2.stdout
    ti = tmp_path / "ti"
    assert invoke("eval", "thought-inference", str(examples_path), "-m", "m", "-j", "j1", "--out", str(ti),
                  "--no-embeddings", "--limit", "3").exit_code == 0
    r3 = invoke("eval", "judge-agreement", str(ti / "items.jsonl"), "--judge", "j2", "--out", str(tmp_path / "ag"))
    assert r3.exit_code == 0, r3.output
    assert json.loads((tmp_path / "ag" / "summary.json").read_text())["agreement"][0]["n"] == 3


def test_bad_inputs_give_one_clear_line(fake_models: list[Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "messages": [{"id": "m", "type": "robot", "content": "hi"}]}\n')
    r = invoke("eval", "thought-inference", str(bad), "--out", str(tmp_path / "o"), "--no-embeddings")
    assert r.exit_code == 1 and "line 1" in r.stderr and "Traceback" not in r.output
    r = invoke("simulate", "--out", str(tmp_path / "s.jsonl"))
    assert r.exit_code == 1 and "--task" in r.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = invoke("eval", "next-message", str(empty), "--out", str(tmp_path / "o2"), "--no-embeddings")
    assert r.exit_code == 1 and "no conversations" in r.stderr


def test_resuming_with_other_settings_is_refused(fake_models: list[Any], examples_path: Path, tmp_path: Path) -> None:
    base = ["eval", "thought-inference", str(examples_path), "-m", "m", "--out", str(tmp_path), "--no-embeddings",
            "--limit", "1"]
    assert invoke(*base, "-j", "j1").exit_code == 0
    r = invoke(*base, "-j", "j2")
    assert r.exit_code == 1 and "judge_spec" in r.stderr and "new --out" in r.stderr
    assert invoke(*base, "-j", "j1", "-m", "another", "--limit", "2").exit_code == 0  # more models/items: fine


def test_a_resumed_run_reports_the_usage_of_every_run(fake_models: list[Any], examples_path: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "nm"
    base = ["eval", "next-message", str(examples_path), "--model", "m1", "--judge", "j1", "--out", str(out),
            "--no-embeddings", "--no-cache", "--condition", "history"]
    r = invoke(*base, "--limit", "2")
    assert r.exit_code == 0, r.output
    first = json.loads((out / "summary.json").read_text())["usage"]
    assert first["m1"]["calls"] == 2 and first["j1"]["calls"] > 0
    r2 = invoke(*base, "--limit", "4")  # resumes: 2 stored, 2 new
    assert r2.exit_code == 0 and "2 items computed, 2 resumed" in r2.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["usage_this_run"]["m1"]["calls"] == 2
    assert s["usage"]["m1"]["calls"] == 4 and s["usage"]["m1"]["runs"] == 2
    assert s["usage"]["j1"]["calls"] == first["j1"]["calls"] + s["usage_this_run"]["j1"]["calls"]
    lines = [json.loads(x) for x in (out / "usage.jsonl").read_text().splitlines()]
    assert sum("usage" in x for x in lines) == 2  # one summary line per run, besides its call lines
    assert len({x["run"] for x in lines}) == 2 and all("run" in x for x in lines)
    assert "over 2 run(s)" in (out / "summary.md").read_text()
    assert s["usage_runs"] == 2 and s["usage_summary"].startswith(f"{4 + s['usage']['j1']['calls']} calls over 2 runs")
    assert s["usage_summary"] in (out / "summary.md").read_text() and s["usage_summary"] in r2.stderr


def test_judge_replies_are_kept_per_item_even_when_they_fail(examples_path: Path, tmp_path: Path) -> None:
    import asyncio

    from thoughttrace.data import read_conversations
    from thoughttrace.evals import ItemStore, Judge, NextMessageEval

    def fn(messages: Any, cfg: Any) -> str:
        text = "\n".join(m.content for m in messages)
        return "I cannot decide, sorry." if "Score: N" in text else "a prediction"

    model = get_model("scripted:nojudge", cache=False, fn=fn)
    ev = NextMessageEval(model, Judge(model, "message_similarity", max_retries=1), embeddings=None)
    store = ItemStore(tmp_path / "items.jsonl")
    asyncio.run(ev.arun(read_conversations(examples_path), store, ["history"], limit=1))
    (rec,) = store.records()
    assert rec["score"] is None and rec["judge"]["failures"] == 2
    replies = rec["judge"]["replies"]
    assert len(replies) == 2 and all(r["raw"] == "I cannot decide, sorry." and r["error"] for r in replies)
