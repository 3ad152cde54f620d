"""`thoughttrace doctor`: is every part a user may rely on installed, and how to fix what is not.

Why: a fresh machine failed `make test` because one registry package was never installed, and the failure
surfaced as seven unrelated test errors. One check per part, each with the exact command that fixes it,
turns that into one readable line. Checks only look (find_spec, file checksums, binaries on PATH): they
never import torch or load a model, so the command stays fast.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Check:
    """One part: its state, what it is used for, and the command that installs it."""

    part: str
    ok: bool
    detail: str
    fix: str
    #: a default command (`make demo`, `analyze`, `eval`, ...) needs it; a miss makes doctor exit 1
    required: bool


def _package(dist: str, module: str, fix: str, required: bool, used_for: str) -> Check:
    """A Python library: importable (found without importing) and its installed version."""
    found = importlib.util.find_spec(module) is not None
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = ""
    ok = found and bool(version)
    detail = f"{dist} {version} ({used_for})" if ok else f"{dist} is not installed ({used_for})"
    return Check(dist, ok, detail, fix, required)


def _extra(name: str) -> str:
    return f"pip install 'thoughttrace[{name}]'  (from a checkout: pip install -e '.[{name}]')"


def _weights(name: str, required: bool, used_for: str) -> Check:
    """A registry GGUF: present, assembled and sha256-verified (assembly happens once, like first use)."""
    from thoughttrace.llm.errors import ConfigurationError
    from thoughttrace.llm.weights import KNOWN, resolve_weights

    spec = KNOWN[name]
    part = f"weights {name}"
    try:
        path = resolve_weights(name)
    except ConfigurationError as exc:
        # the message ends with the install command, which the fix line already shows
        return Check(part, False, f"{str(exc).split(': run `')[0]} ({used_for})", spec.install, required)
    return Check(part, True, f"{path} (sha256 verified; {used_for})", spec.install, required)


def _embedding_model() -> Check:
    from thoughttrace.llm.embeddings import MINILM_INSTALL, resolve_embedding_spec
    from thoughttrace.llm.errors import ConfigurationError

    try:
        path = resolve_embedding_spec("minilm")
    except ConfigurationError:
        return Check("embedding model minilm", False,
                     "all-MiniLM-L6-v2 is not installed (analyze's semantic shift, eval embedding cosine)",
                     MINILM_INSTALL, True)
    return Check("embedding model minilm", True, f"{path} (analyze, eval embedding cosine)", MINILM_INSTALL, True)


def _binary(part: str, candidates: list[str], fix: str, used_for: str) -> Check:
    for cand in candidates:
        hit = sorted(glob.glob(cand)) if "*" in cand else ([p] if (p := shutil.which(cand)) else [])
        if hit:
            return Check(part, True, f"{hit[-1]} ({used_for})", fix, False)
    return Check(part, False, f"not found ({used_for})", fix, False)


CHECKS: list[Callable[[], Check]] = [
    lambda: _weights("qwen0.5b", True, "the default model `local`"),
    lambda: _weights("smollm2", False, "`local:smollm2`, the test suite"),
    lambda: _weights("qwen1.5b", False, "optional `local:qwen1.5b`"),
    _embedding_model,
    lambda: _package("xllamacpp", "xllamacpp", _extra("local"), True, "llama.cpp for `local` models"),
    # the CPU wheel on local disk; `pip install torch` alone would download a CUDA build of several GB
    lambda: _package("torch", "torch", "pip install torch==2.13.0", True, "embeddings, DPO"),
    lambda: _package("transformers", "transformers", _extra("transformers"), True, "`transformers:` models, DPO"),
    lambda: _package("sentence-transformers", "sentence_transformers", _extra("analysis"), True, "embeddings"),
    lambda: _package("fastapi", "fastapi", _extra("platform"), True, "the study platform"),
    # the browser tests drive Debian's chromium through the Python playwright package (never its own browser)
    lambda: _package("playwright", "playwright", "pip install -e '.[dev]'  (make install does it)", False,
                     "browser tests, with chromium"),
    lambda: _binary("chromium", ["chromium", "/usr/bin/chromium"],
                    "apt-get install -y --no-install-recommends chromium fonts-liberation", "browser tests"),
    # the tests start a throwaway cluster with initdb/pg_ctl (scripts/start_postgres.sh), no system service
    lambda: _binary("postgresql", ["initdb", "/usr/lib/postgresql/*/bin/initdb"],
                    "apt-get install -y postgresql", "PostgreSQL tests and multi-worker studies"),
]


def run_checks() -> list[Check]:
    """Every check, in the order a user reads them."""
    return [check() for check in CHECKS]


def report(checks: list[Check]) -> dict[str, object]:
    """The machine-readable form of `doctor --json`."""
    return {
        "format_version": FORMAT_VERSION,
        "ok": all(c.ok for c in checks if c.required),
        "checks": [asdict(c) for c in checks],
    }
