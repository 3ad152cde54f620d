"""The labelling and relation paths against the real embedded model (SmolLM2-135M via llama.cpp).

These check that the pipeline runs end to end on a real backend and that whatever the tiny model says is
recorded honestly (a taxonomy label or `unlabelled` with the raw text); they make no accuracy claim.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.label import get_label_set, read_label_records

pytestmark = pytest.mark.model


def test_label_with_smollm2_both_methods(examples_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for method, attempts in (("logprobs", "1"), ("generate", "1")):
        out = tmp_path / f"{method}.jsonl"
        r = runner.invoke(cli, ["label", str(examples_path), "--out", str(out), "--model", "local:smollm2",
                                "--kind", "reaction", "--limit", "2", "--method", method, "--max-attempts", attempts])
        assert r.exit_code == 0, r.output
        recs = read_label_records(out)
        assert len(recs) == 2
        for rec in recs:
            assert rec["method"] == method
            if rec["status"] == "ok":
                assert rec["label"] in get_label_set("reaction").names
            else:
                assert rec["label"] is None and (rec.get("raw") is not None or rec.get("error"))
        if method == "logprobs":
            assert all(abs(sum(r["probs"].values()) - 1) < 1e-3 for r in recs if r["status"] == "ok")
        else:  # constrained decoding (JSON schema with the label enum): llama.cpp can only emit a valid label
            assert all(r["status"] == "ok" for r in recs)
        # resume: a second run makes no new model call
        r2 = runner.invoke(cli, ["label", str(examples_path), "--out", str(out), "--model", "local:smollm2",
                                 "--kind", "reaction", "--limit", "2", "--method", method, "--json"])
        assert r2.exit_code == 0, r2.output
        assert json.loads(r2.output[r2.output.index("{"):])["summary_this_run"]["skipped_done"] == 2


def test_analyze_with_relations_from_smollm2(examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["analyze", str(examples_path), "--out", str(out), "--no-embeddings",
                                 "--model", "local:smollm2", "--relation-method", "logprobs", "--relation-limit", "2"])
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    rel = stats["relations"]
    assert rel["available"] is True and rel["source"]["model"] == "local:smollm2"
    assert stats["usage"]["models"]["local:smollm2"]["calls"] >= 1
    assert (out / "relations.labels.jsonl").exists()
