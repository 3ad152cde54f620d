"""Loading GGUF weights into xllamacpp's in-process llama.cpp server, shared per process.

The server object is both an in-process API (`handle_chat_completions(dict)`) and a real HTTP server on a
loopback port, so the same loaded weights serve the `local` backend and `LocalServer` (tests and benches
of the OpenAI-compatible backend). Loads are pooled: asking twice for the same weights and settings
returns the same server instead of a second copy in memory.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, MissingDependencyError
from ..weights import KNOWN, resolve_weights


def default_threads() -> int:
    """One thread fewer than the cores (generation collapses when llama.cpp competes for every core)."""
    env = os.environ.get("THOUGHTTRACE_THREADS")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 2) - 1)


def resolve_model_path(name_or_path: str) -> Path:
    """A registry name (smollm2, qwen0.5b, qwen1.5b, default) or a path to a .gguf file."""
    if name_or_path in KNOWN or name_or_path in {"default", "qwen", "qwen0.5", "qwen1.5"}:
        return resolve_weights(name_or_path)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ConfigurationError(
            f"local model '{name_or_path}' is neither a known name ({', '.join(sorted(KNOWN))}) nor an existing "
            ".gguf file; check the path"
        )
    return path


@dataclass(frozen=True)
class ServerSettings:
    path: str
    threads: int
    n_ctx: int
    parallel: int
    #: False: every prompt is evaluated from scratch (see `reproducible` in LocalServer for why)
    reuse_prompt: bool = True


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[ServerSettings, Any] = {}

    def get(self, settings: ServerSettings) -> Any:
        with self._lock:
            server = self._servers.get(settings)
            if server is None:
                server = self._servers[settings] = start_server(settings)
            return server


POOL = _Pool()


def start_server(settings: ServerSettings) -> Any:
    """Load the weights into a new xllamacpp server (quiet: llama.cpp's own logging is off)."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise MissingDependencyError("xllamacpp", "local") from exc
    params = xllamacpp.CommonParams()
    params.model.path = settings.path
    params.n_ctx = settings.n_ctx * settings.parallel
    params.n_parallel = settings.parallel
    params.cpuparams.n_threads = settings.threads
    params.cpuparams_batch.n_threads = settings.threads
    params.cache_prompt = settings.reuse_prompt
    params.verbosity = -1
    try:
        return xllamacpp.Server(params)
    except RuntimeError as exc:
        raise ConfigurationError(f"llama.cpp could not load {settings.path}: {exc}; is it a valid GGUF file?") from exc
