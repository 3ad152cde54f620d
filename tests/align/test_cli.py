"""`thoughttrace align ...` through click, with scripted models standing in for real ones."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from thoughttrace.cli import align as align_cli
from thoughttrace.cli.main import cli
from thoughttrace.llm import get_model


@pytest.fixture
def scripted(monkeypatch):
    def fn(msgs, cfg):
        text = msgs[-1].content
        if "<|User Question|>" in text:
            a = text.split("<|The Start of Assistant B's Answer|>")[0]
            return "My answer: fine.\n[[A>B]]" if "LONGER" in a else "My answer: fine.\n[[B>A]]"
        if "## What to improve" in text:
            return "A rewritten, clearer answer that covers what was missing."
        return "LONGER answer, with detail."

    def build(model_spec, *args, **kwargs):
        return get_model("scripted", cache=False, fn=fn)

    monkeypatch.setattr(align_cli, "build_model", build)


def test_rewrite_pairs_answer_arena(tmp_path, examples_path, scripted):
    run = CliRunner().invoke
    rw = tmp_path / "rw.jsonl"
    res = run(cli, ["align", "rewrite", str(examples_path), "--guide", "messages", "--out", str(rw)])
    assert res.exit_code == 0, res.output
    assert "wrote 2 rewrites" in res.output
    meta = json.loads((tmp_path / "rw.jsonl.meta.json").read_text())
    assert meta["format_version"] == 1 and meta["rewrites"] == 2 and "usage" in meta
    pairs = tmp_path / "pairs.jsonl"
    res = run(cli, ["align", "pairs", str(rw), "--out", str(pairs), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["kept"] == 2
    row = json.loads(pairs.read_text().splitlines()[0])
    assert row["provenance"]["guide"] == "messages" and row["chosen"][0]["role"] == "assistant"

    for name in ("base", "cand"):
        res = run(cli, ["align", "answer", "demo", "--limit", "3", "--name", name,
                        "--out", str(tmp_path / f"{name}.jsonl")])
        assert res.exit_code == 0, res.output
    res = run(cli, ["align", "arena", "demo", "--limit", "3", "--answers", str(tmp_path / "base.jsonl"),
                    "--answers", str(tmp_path / "cand.jsonl"), "--baseline", "base", "--samples", "20",
                    "--out", str(tmp_path / "arena")])
    assert res.exit_code == 0, res.output
    assert "| cand | 50.0" in res.output  # same answers + a position-biased judge: exactly even
    result = json.loads((tmp_path / "arena" / "results.json").read_text())
    assert result["format_version"] == 1 and result["baseline"] == "base"
    assert (tmp_path / "arena" / "results.md").exists()


def test_bad_inputs_exit_1_without_traceback(tmp_path):
    run = CliRunner().invoke
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q"}\n')
    res = run(cli, ["align", "import-pairs", str(bad), "--source", "wildchat", "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1 and "line 1" in res.output and "Traceback" not in res.output
    res = run(cli, ["align", "pairs", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1 and "no such file" in res.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("betta: 1\n")
    res = run(cli, ["align", "train", str(bad), "--out", str(tmp_path / "run"), "--config", str(cfg)])
    assert res.exit_code == 1 and "betta" in res.output


def test_train_print_config():
    res = CliRunner().invoke(cli, ["align", "train", "--print-config"])
    assert res.exit_code == 0 and "beta: 0.1" in res.output and "lora:" in res.output
