"""Output files never replace what the command did not create (thoughttrace.outputs, issue 22).

A character device and a FIFO are written in place, a symlink is refused and left as it was, a path under a
regular file is a one-line error, and a failed write leaves nothing behind. Through the real CLI where a user
would meet it (`data generate`, `data export`)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.outputs import OutputPathError, check_output_path, open_output, write_output_text


def _char_device(path: Path, minor: int) -> Path:
    """A copy of /dev/null (minor 3) or /dev/full (minor 7) in a temp folder: never the machine's own."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("mknod needs root (CI runs as root; the FIFO test covers in-place writing without it)")
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_a_character_device_is_written_in_place_never_replaced(tmp_path: Path) -> None:
    dev = _char_device(tmp_path / "mynull", 3)
    code, out = _run("data", "generate", str(dev), "--n", "3")
    assert code == 0, out
    assert stat.S_ISCHR(os.lstat(dev).st_mode), "the device was replaced by a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mynull"], "no manifest or temp file beside a device"


def test_a_full_device_is_a_one_line_error_and_stays_a_device(tmp_path: Path) -> None:
    dev = _char_device(tmp_path / "myfull", 7)
    code, out = _run("data", "generate", str(dev), "--n", "50")
    assert code == 1
    assert out.strip().splitlines()[-1].startswith(f"error: {dev}: No space left on device")
    assert "Traceback" not in out
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_a_symlink_is_refused_and_neither_link_nor_target_changes(tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_text("precious\n", encoding="utf-8")
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    code, out = _run("data", "generate", str(link), "--n", "3")
    assert code == 1
    assert "symbolic link" in out and "Traceback" not in out
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8") == "precious\n"


def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    write_output_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == ["through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_path_under_a_regular_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    code, out = _run("data", "generate", str(tmp_path / "afile" / "x.jsonl"), "--n", "2")
    assert code == 1
    assert "is a file, not a folder" in out and "Traceback" not in out


def test_a_failed_write_leaves_no_partial_file_and_no_new_folders(tmp_path: Path) -> None:
    dest = tmp_path / "new" / "deeper" / "out.jsonl"
    with pytest.raises(RuntimeError), open_output(dest) as fh:
        fh.write("half a line")
        raise RuntimeError("the command failed midway")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_regular_file_is_replaced_only_when_complete(tmp_path: Path) -> None:
    dest = tmp_path / "out.jsonl"
    dest.write_text("old\n", encoding="utf-8")
    with pytest.raises(RuntimeError), open_output(dest) as fh:
        fh.write("new but unfinished")
        raise RuntimeError("boom")
    assert dest.read_text(encoding="utf-8") == "old\n"
    write_output_text(dest, "new\n")
    assert dest.read_text(encoding="utf-8") == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_stdout_only_where_allowed(tmp_path: Path) -> None:
    assert check_output_path("-", allow_stdout=True) == "stdout"
    with pytest.raises(OutputPathError, match="standard output"):
        check_output_path("-")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_path(tmp_path)


def test_parquet_export_refuses_a_symlink_too(tmp_path: Path, examples_path: Path) -> None:
    target = tmp_path / "keep.parquet"
    target.write_bytes(b"keep")
    link = tmp_path / "out.parquet"
    link.symlink_to(target)
    code, out = _run("data", "export", str(examples_path), "--format", "parquet", str(link))
    assert code == 1 and "symbolic link" in out
    assert target.read_bytes() == b"keep"
