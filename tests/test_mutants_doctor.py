"""doctor's rules that scripts/mutate.py found unprotected: a binary found by a version glob, a check as a value.

Why: `postgresql` is found either on PATH (`initdb`) or under a versioned folder (`/usr/lib/postgresql/*/bin`),
Debian's layout, where initdb is not on PATH. The test_doctor machine answers every lookup the same way, so it
could not tell the two lookups apart; these tests use real files in a temp folder and the real PATH lookup.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from thoughttrace import doctor


def _tool(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_binary_under_a_versioned_folder_is_found_by_its_glob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))  # not on PATH: only the glob can find it
    found = _tool(tmp_path / "lib" / "16" / "bin" / "initdb")
    check = doctor._binary("postgresql", ["initdb", str(tmp_path / "lib" / "*" / "bin" / "initdb")], "apt-get x",
                           "tests")
    assert check.ok is True and check.detail == f"{found} (tests)" and check.required is False


def test_a_binary_on_path_is_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    found = _tool(bin_dir / "chromium")
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    check = doctor._binary("chromium", ["chromium"], "apt-get install chromium", "browser tests")
    assert check.ok is True and check.detail == f"{found} (browser tests)"


def test_a_binary_found_nowhere_is_missing_with_its_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    check = doctor._binary("postgresql", ["initdb", str(tmp_path / "*" / "initdb")], "apt-get install -y postgresql",
                           "tests")
    assert (check.ok, check.detail, check.fix) == (False, "not found (tests)", "apt-get install -y postgresql")


def test_a_check_is_a_value_nobody_can_change_after_it_ran() -> None:
    # report() and the text output read the same Check objects: one can never be flipped to ok in between
    check = doctor.Check("torch", False, "torch is not installed", "pip install torch", True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.ok = True  # type: ignore[misc]
    assert doctor.report([check])["ok"] is False
