"""End to end with the real embedded model (SmolLM2-135M via llama.cpp) on the shared example file.

These prove the pipeline runs on a real model (prompts fit, outputs parse or fall back as documented,
files come out, resume replays from the cache); they make no accuracy claim about a 135M model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.data import validate_file

pytestmark = pytest.mark.model
MODEL = "local:smollm2"
SMALL = ["--max-tokens", "40", "--max-context-chars", "1500", "--max-message-chars", "400"]


def run(*args: str) -> object:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_thought_inference_real_model_resumes_from_cache(examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "ti"
    args = ["eval", "thought-inference", str(examples_path), "-m", MODEL, "-j", MODEL, "--out", str(out),
            "--limit", "2", "--no-swap", "--judge-retries", "0", "--judge-max-tokens", "40", *SMALL]
    first = run(*args)
    recs = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["prediction"] for r in recs)
    assert all(isinstance(r["embedding_cosine"], float) for r in recs)  # the real MiniLM embedder
    assert all(r["judge"]["judge"] == MODEL for r in recs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["usage"][MODEL]["calls"] >= 4 and "2 items computed" in first.stderr  # type: ignore[attr-defined]
    # interrupt: drop the second record; the rerun recomputes it from the cache without calling the model
    (out / "items.jsonl").write_text(json.dumps(recs[0]) + "\n")
    second = run(*args)
    assert "1 items computed, 1 resumed" in second.stderr  # type: ignore[attr-defined]
    again = json.loads((out / "summary.json").read_text())
    this_run = again["usage_this_run"][MODEL]
    assert this_run["calls"] == 0 and this_run["cache_hits"] >= 2
    # the summary's usage is the whole study's: the first run's calls are not lost on resume
    assert again["usage"][MODEL]["calls"] == summary["usage"][MODEL]["calls"]


def test_next_message_real_model_two_conditions(examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "nm"
    run("eval", "next-message", str(examples_path), "-m", MODEL, "-j", "none", "--condition", "history",
        "--condition", "thoughts", "--out", str(out), "--limit", "2", "--no-embeddings", *SMALL)
    recs = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert {r["condition"] for r in recs} == {"history", "reaction"}
    assert all(r["prediction"] for r in recs)
    assert "| model | condition |" in (out / "summary.md").read_text()


def test_simulate_and_compare_real_model(examples_path: Path, tmp_path: Path) -> None:
    sim = tmp_path / "sim.jsonl"
    run("simulate", "--task", "Find a simple pasta recipe for dinner tonight", "-m", MODEL, "-u", MODEL,
        "--turns", "1", "--user-max-tokens", "80", "--assistant-max-tokens", "48", "--out", str(sim))
    report = validate_file(sim)
    assert report.ok and report.valid == 1
    conv = json.loads(sim.read_text())
    assert conv["simulation"]["user_model"] == MODEL
    assert conv["messages"], conv["simulation"]["end_reason"]  # the JSON-schema-constrained turn parsed
    assert conv["messages"][0]["reasons"][0]["content"]
    out = tmp_path / "cmp"
    run("eval", "simulator", str(examples_path), str(sim), "--out", str(out), "--no-embeddings")
    assert "| metric | real | simulated |" in (out / "summary.md").read_text()


def test_model_based_inference_real_model(examples_path: Path, tmp_path: Path) -> None:
    """AutoToM inverse planning with the real model: 7 proposed reasons scored by next-token log-probs."""
    out = tmp_path / "mb"
    run("eval", "thought-inference", str(examples_path), "-m", MODEL, "-j", "none", "--method", "model-based",
        "--out", str(out), "--limit", "1", "--no-embeddings", *SMALL)
    rec = json.loads((out / "items.jsonl").read_text().splitlines()[0])
    assert rec["kind"] == "reason" and rec["prediction"] and 1 <= len(rec["candidates"]) <= 7
    assert abs(sum(c["posterior"] for c in rec["candidates"]) - 1) < 1e-6
    assert rec["predicted_type"] in {c["type"] for c in rec["candidates"]}
