"""The two-command set-up and the commands' first contact with a user's machine (issue 22).

`make install` never installs into a system interpreter and notices a removed package; the demo names a
taken port before printing its banner; a bad database URL and a failed analysis are one line and leave
nothing behind."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli

REPO = Path(__file__).resolve().parents[1]


def _system_python() -> str:
    base = Path(sys.base_prefix) / "bin" / "python3"
    if not base.exists():
        pytest.skip(f"no base interpreter at {base}")
    return str(base)


def test_install_refuses_a_system_interpreter() -> None:
    done = subprocess.run(["bash", "scripts/install.sh", _system_python()], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "refusing to install" in done.stderr and "not a virtual environment" in done.stderr


def test_install_check_notices_a_removed_package() -> None:
    script = str(REPO / "scripts" / "installed_ok.py")
    ok = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    gone = subprocess.run([sys.executable, script, "no-such-distribution-xyz==1.0"], capture_output=True, text=True,
                          timeout=60)
    assert gone.returncode == 1
    assert "no-such-distribution-xyz" in gone.stderr


def test_install_check_lists_the_extras_requirements() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import installed_ok
    finally:
        sys.path.pop(0)
    names = installed_ok.required()
    # one from the core, one from an extra reached through `all`, one from `dev`
    assert {"pydantic", "fastapi", "ray", "playwright"} <= set(names)


def test_demo_names_a_taken_port_before_its_banner() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["demo", "--port", str(port), "--check", "--model", "scripted"])
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert f"--port {port + 1}" in result.output
    assert "http://" not in result.output, "the banner was printed before the port was checked"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_bad_database_url_is_one_line() -> None:
    result = CliRunner().invoke(cli, ["demo", "--db", "nonsense://x", "--check", "--port", str(_free_port()),
                                      "--model", "scripted"])
    assert result.exit_code == 1
    assert "not a database URL" in result.output and "sqlite:///" in result.output
    assert "Traceback" not in result.output


def test_a_failed_analysis_leaves_no_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"bad": 1}\n', encoding="utf-8")
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["analyze", str(bad), "--out", str(out), "--no-embeddings"])
    assert result.exit_code == 1
    assert not out.exists()


def test_an_analysis_into_an_existing_folder_keeps_it_on_failure(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"bad": 1}\n', encoding="utf-8")
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results", encoding="utf-8")
    result = CliRunner().invoke(cli, ["analyze", str(bad), "--out", str(out), "--no-embeddings"])
    assert result.exit_code == 1
    assert (out / "keep.txt").read_text(encoding="utf-8") == "earlier results"
