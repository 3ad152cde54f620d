"""`thoughttrace llm ping`, `thoughttrace cache ...` and weight checksums."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.llm import ConfigurationError, get_model
from thoughttrace.llm.weights import WeightsSpec, _verify


@pytest.mark.model
def test_ping_real_entry_point_prints_capabilities():
    out = subprocess.run(
        [sys.executable, "-m", "thoughttrace", "llm", "ping", "--model", "local:smollm2", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["model"] == "local:smollm2"
    assert {"generate", "next_token_logprobs", "score"} <= set(data["capabilities"])
    assert data["reply"].strip()
    assert "usage: 1 model calls" in out.stderr


def test_ping_bad_model_string_is_one_clear_line():
    result = CliRunner().invoke(cli, ["llm", "ping", "--model", "nonsense"])
    assert result.exit_code == 1
    assert "unknown model string" in result.output and "Traceback" not in result.output


def test_cache_commands(tmp_path):
    cache = tmp_path / "c.sqlite"
    model = get_model("scripted", cache=cache, outputs=["a", "b"])
    model.generate("x")
    model.generate("y")
    runner = CliRunner()
    info = runner.invoke(cli, ["cache", "info", "--cache", str(cache), "--json"])
    assert info.exit_code == 0 and json.loads(info.output)["entries"] == 2
    dump = tmp_path / "dump.jsonl"
    assert "exported 2" in runner.invoke(cli, ["cache", "export", "--cache", str(cache), str(dump)]).output
    other = tmp_path / "other.sqlite"
    assert "imported 2" in runner.invoke(cli, ["cache", "import", "--cache", str(other), str(dump)]).output
    assert "deleted 0" in runner.invoke(cli, ["cache", "prune", "--cache", str(other), "--older-than-days", "1"]).output
    assert "deleted 2" in runner.invoke(cli, ["cache", "clear", "--cache", str(other)]).output


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("THOUGHTTRACE_WEIGHTS_DIR", str(tmp_path / "w"))
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"not really a model")
    spec = WeightsSpec("fake", "model.gguf", (), "0" * 64, "pip install fake", 0)
    with pytest.raises(ConfigurationError, match="checksum mismatch"):
        _verify(weights, spec)


def test_local_path_that_does_not_exist_is_explained():
    with pytest.raises(ConfigurationError, match="neither a known name"):
        get_model("local:/no/such/model.gguf")


@pytest.mark.model
def test_assembled_default_weights_match_published_checksum():
    from thoughttrace.llm.weights import KNOWN, resolve_weights, sha256_file

    path = resolve_weights("qwen0.5b")
    assert Path(path).stat().st_size == 491400064
    assert sha256_file(path) == KNOWN["qwen0.5b"].sha256


@pytest.mark.parametrize(("content", "says"), [
    (b"\xff\xfe\x00binary junk\n", "line 1 is not UTF-8 text"),
    (b'{"thoughttrace_cache": 1}\n{"a": 1}\n', "line 2 is not a cache entry"),
    (b'{"some": "json"}\n', "no header line"),
])
def test_cache_import_of_a_wrong_file_is_one_line(tmp_path, content, says):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    result = CliRunner().invoke(cli, ["cache", "import", str(bad), "--cache", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 1
    assert says in result.output and "cache export" in result.output
    assert "Traceback" not in result.output
