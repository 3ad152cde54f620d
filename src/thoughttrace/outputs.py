"""Writing a command's output files without ever replacing what the command did not create.

Why: every writer used to write a temp file and rename it over the destination. As root,
`thoughttrace data generate /dev/full` turned /dev/full into a regular file, and a symlink was swapped for a
plain file. The rules, used by every command that writes an output file:

- a new path or an existing regular file: written to a temp file beside it and renamed into place only when
  complete, so a failed command leaves neither a partial file nor a changed one (folders it had to make for
  the path are removed again when they stay empty);
- a character device or a FIFO (``/dev/null``, ``/dev/stdout``, a named pipe): written in place, never
  replaced; a write error (``/dev/full``: no space left) is an error;
- ``-``: standard output, where the command allows it;
- a symbolic link, a block device, a socket or a folder: refused with an error naming the fix; the link and
  the file behind it stay as they are;
- a path under a regular file: refused with an error naming the file.

This module imports nothing else of the package, so every part (data and llm included) can use it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

STDOUT = "-"


class OutputPathError(ValueError):
    """An output path the command will not write to; the message says why and what to do instead."""


def _in_place(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def check_output_path(path: str | Path, *, allow_stdout: bool = False) -> str:
    """Say how `path` would be written ("stdout", "in-place" or "replace"), or raise OutputPathError."""
    if str(path) == STDOUT:
        if allow_stdout:
            return "stdout"
        raise OutputPathError("'-' (standard output) is not allowed for this output: give a file path")
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise OutputPathError(f"{p} is a symbolic link (to {os.readlink(p)}): outputs are never written "
                                  "through links; give the real path, or remove the link first")
        if stat.S_ISDIR(st.st_mode):
            raise OutputPathError(f"{p} is a folder: give a file path for this output")
        if _in_place(st.st_mode):
            return "in-place"
        if not stat.S_ISREG(st.st_mode):
            raise OutputPathError(f"{p} is a block device or socket, not a file: give a regular file path")
        return "replace"
    for parent in p.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputPathError(f"cannot write {p}: {parent} is a file, not a folder; choose another path")
            break
    return "replace"


def _missing_parents(p: Path) -> list[Path]:
    missing = []
    for parent in p.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


@contextlib.contextmanager
def open_output(path: str | Path, mode: str = "w", *, allow_stdout: bool = False,
                compress: bool | None = None) -> Iterator[IO[Any]]:
    """Open an output for writing by the rules above; the file appears only if the block ends without error.

    mode: "w" (text, UTF-8) or "wb". compress: gzip the bytes; default: when the name ends in ".gz".
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_output mode must be 'w' or 'wb', not {mode!r}")
    how = check_output_path(path, allow_stdout=allow_stdout)
    binary = mode == "wb"
    if how == "stdout":
        yield sys.stdout.buffer if binary else sys.stdout
        sys.stdout.flush()
        return
    p = Path(path)
    gz = p.name.endswith(".gz") if compress is None else compress
    if how == "in-place":
        raw: IO[bytes] = open(p, "wb")  # noqa: SIM115 - closed below, written where it stands
        target_raw, tmp = raw, None
        made: list[Path] = []
    else:
        made = _missing_parents(p)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        target_raw = open(tmp, "wb")  # noqa: SIM115
    stream: IO[Any] = gzip.GzipFile(fileobj=target_raw, mode="wb") if gz else target_raw  # type: ignore[assignment]
    fh: IO[Any] = stream if binary else io.TextIOWrapper(stream, encoding="utf-8", newline="")  # type: ignore[arg-type]
    try:
        yield fh
        fh.flush()
        if fh is not stream:
            fh.detach()  # type: ignore[attr-defined]
        if gz:
            stream.close()
        target_raw.close()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            target_raw.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(p)) from exc  # name the output that failed
        raise
    if tmp is not None:
        os.replace(tmp, p)


@contextlib.contextmanager
def output_dir(path: str | Path) -> Iterator[Path]:
    """An output folder: made if missing, and removed again (with what was written into it) if the block fails.

    A folder that already existed is left as it is, so a rerun never deletes a user's earlier results; only
    a folder this command made, and only on failure. For jobs that resume, keep their own markers instead."""
    p = Path(path)
    check = check_output_path(p / "_") if not p.is_dir() else "replace"
    del check  # raises for a path under a regular file or through a link
    if p.is_symlink():
        raise OutputPathError(f"{p} is a symbolic link: give the real folder's path")
    made = [p, *_missing_parents(p)] if not p.exists() else []
    p.mkdir(parents=True, exist_ok=True)
    try:
        yield p
    except BaseException:
        if made:
            import shutil

            shutil.rmtree(made[-1], ignore_errors=True)
        raise


def is_stream(path: str | Path) -> bool:
    """True for outputs written in place or to stdout: no side files (manifests) belong beside them."""
    return str(path) == STDOUT or check_output_path(path) == "in-place"


def write_output_text(path: str | Path, text: str, *, allow_stdout: bool = False) -> None:
    """Write a whole text output (a JSON summary, a report) by the rules above."""
    with open_output(path, "w", allow_stdout=allow_stdout) as fh:
        fh.write(text)


def write_output_bytes(path: str | Path, data: bytes) -> None:
    with open_output(path, "wb") as fh:
        fh.write(data)
