"""`get_model(spec)`: one string names a model. Backends are imported lazily, by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import Backend
from .cache import ResponseCache, default_cache_path
from .errors import ConfigurationError
from .model import Model
from .usage import UsageTracker

OPENAI_BASE_URL = "https://api.openai.com/v1"

SPEC_HELP = (
    "model strings: 'local' (embedded default), 'local:smollm2', 'local:qwen0.5b', 'local:qwen1.5b', "
    "'local:/path/model.gguf', 'openai/NAME', 'openai-compatible/NAME' (with base_url or THOUGHTTRACE_BASE_URL: "
    "one URL, URL1,URL2 or an endpoints YAML file), "
    "'transformers:/path/or/dir' (or transformers:smollm2), 'scripted'"
)


def make_backend(spec: str, **kwargs: Any) -> Backend:
    """Build the backend a model string names; extra keyword arguments go to its constructor."""
    if spec == "scripted" or spec.startswith("scripted:"):
        from .backends.scripted import ScriptedBackend

        name = spec.split(":", 1)[1] if ":" in spec else "scripted"
        return ScriptedBackend(name=name, **kwargs)
    if spec == "local" or spec.startswith("local:"):
        from .backends.local import LocalBackend

        return LocalBackend(spec.split(":", 1)[1] if ":" in spec else "default", **kwargs)
    if spec.startswith("transformers:"):
        from .backends.hf import TransformersBackend

        return TransformersBackend(spec.split(":", 1)[1], **kwargs)
    if spec.startswith("openai/"):
        from .backends.openai_compat import OpenAICompatBackend

        api_key = kwargs.pop("api_key", None) or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            raise ConfigurationError("openai/ models need OPENAI_API_KEY in the environment")
        base_url = kwargs.pop("base_url", None) or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        return OpenAICompatBackend(spec.split("/", 1)[1], base_url=base_url, api_key=api_key, kind_name="openai", **kwargs)
    if spec.startswith("openai-compatible/"):
        from .backends.openai_compat import OpenAICompatBackend

        base_url = kwargs.pop("base_url", None) or os.environ.get("THOUGHTTRACE_BASE_URL")
        if not base_url:
            raise ConfigurationError(
                f"'{spec}' needs a server URL: pass base_url=... (--base-url) or set THOUGHTTRACE_BASE_URL, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        api_key = kwargs.pop("api_key", None) or os.environ.get("THOUGHTTRACE_API_KEY")
        return OpenAICompatBackend(spec.split("/", 1)[1], base_url=base_url, api_key=api_key, **kwargs)
    raise ConfigurationError(f"unknown model string '{spec}'; {SPEC_HELP}")


def get_model(
    spec: str,
    *,
    cache: str | Path | bool | None = True,
    offline: bool = False,
    usage: UsageTracker | None = None,
    max_retries: int = 3,
    backoff_seconds: float = 0.5,
    **backend_kwargs: Any,
) -> Model:
    """Return a ready `Model` for a model string.

    cache: True = the default cache file (THOUGHTTRACE_CACHE or ~/.cache/thoughttrace), a path = that file,
    False/None = no cache. THOUGHTTRACE_NO_CACHE=1 turns the default off. `offline` replays from the cache and
    fails loudly on a miss instead of calling the model.
    """
    backend = make_backend(spec, **backend_kwargs)
    store: ResponseCache | None
    if cache is True:
        store = None if os.environ.get("THOUGHTTRACE_NO_CACHE") == "1" else ResponseCache(default_cache_path())
    elif cache:
        store = ResponseCache(Path(cache))  # type: ignore[arg-type]
    else:
        store = None
    return Model(
        backend,
        cache=store,
        offline=offline,
        usage=usage,
        max_retries=max_retries,
        backoff_seconds=backoff_seconds,
        spec=spec,
    )
