"""Shared CLI plumbing: model options, usage printing, and errors shown as one clear line."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class UserFacingError(click.ClickException):
    """An error whose message already says what to fix; printed without a traceback, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _known_error_types() -> tuple[type[BaseException], ...]:
    from thoughttrace.data.io import DatasetError
    from thoughttrace.llm.errors import LLMError

    types: list[type[BaseException]] = [DatasetError, LLMError]
    with contextlib.suppress(ImportError):
        from pydantic import ValidationError

        types.append(ValidationError)
    return tuple(types)


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the package's typed errors into `error: ...` and exit code 1 (never a traceback)."""
    try:
        yield
    except click.ClickException:
        raise
    except _known_error_types() as exc:
        raise UserFacingError(f"{type(exc).__name__}: {exc}") from exc
    except OSError as exc:  # a bad path, a full disk, no permission: the file and the reason, not a traceback
        raise UserFacingError(os_error_message(exc)) from exc
    except ValueError as exc:
        raise UserFacingError(str(exc)) from exc


def os_error_message(exc: OSError) -> str:
    """`cannot write /dev/full: No space left on device` style: the path, the system's reason, the fix."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    hint = {
        "ENOSPC": "free space or choose another disk",
        "EACCES": "choose a path you may write, or fix its permissions",
        "EPERM": "choose a path you may write, or fix its permissions",
        "ENOTDIR": "a part of the path is a file, not a folder: choose another path",
        "EISDIR": "that is a folder: give a file path",
        "ENOENT": "check the path",
        "EROFS": "the file system is read-only: choose another path",
    }.get(errno.errorcode.get(exc.errno or 0, ""), "check the path")
    return f"{where}: {reason} ({hint})" if where else f"{reason} ({hint})"


def limit_option(what: str) -> Callable[[F], F]:
    """`--limit N` with one meaning everywhere: at most N of the command's items, `what` saying what one is.

    N < 1 is refused by click with one line (a negative slice would silently drop the LAST items).
    """
    return click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
                        help=f"only the first N items (N >= 1); an item here is {what}")


def model_options(default: str = "local") -> Callable[[F], F]:
    """--model, --base-url, --cache, --no-cache, --offline for any command that calls a model."""

    def decorator(fn: F) -> F:
        options = [
            click.option("--model", "-m", "model_spec", default=default, show_default=True,
                         help="model string (see `thoughttrace llm --help`)"),
            click.option("--base-url", default=None, help="server URL for openai-compatible/NAME models; several as URL1,URL2 (a pool: "
                              "routed by load, failing over) or an endpoints YAML file (docs/scale.md)"),
            click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
                         help="cache file (default: THOUGHTTRACE_CACHE or ~/.cache/thoughttrace/llm-cache.sqlite)"),
            click.option("--no-cache", is_flag=True, help="do not read or write the response cache"),
            click.option("--offline", is_flag=True, help="replay from the cache only; fail on a miss"),
            click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, expose_value=False,
                         callback=_remember_timeout, is_eager=False,
                         help="seconds to wait for a server's answer before it counts as hung (taken out of the "
                              "pool, the request moved on); default 120; per endpoint: `timeout` in the fleet YAML"),
        ]
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorator


def _remember_timeout(ctx: click.Context, _param: click.Parameter, value: float | None) -> None:
    """--timeout goes to every model the command builds (kept in the context: no option added to signatures)."""
    if value is not None:
        ctx.meta["thoughttrace.timeout"] = float(value)


#: model strings whose backend takes `timeout` (the HTTP ones)
_TIMEOUT_SPECS = ("openai/", "openai-compatible/")


def _with_timeout(model_spec: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    timeout = ctx.meta.get("thoughttrace.timeout") if ctx is not None else None
    if timeout is not None and model_spec.startswith(_TIMEOUT_SPECS) and "timeout" not in kwargs:
        kwargs = {**kwargs, "timeout": timeout}
    return kwargs


def resolve_base_url(base_url: str | None) -> str | None:
    """A fleet YAML path made absolute here, where the user typed it (a Ray worker runs elsewhere)."""
    if base_url and base_url.strip().endswith((".yaml", ".yml")) and "://" not in base_url:
        return str(Path(base_url.strip()).expanduser().resolve())
    return base_url


def ray_options(fn: F) -> F:
    """--engine local|ray, --ray-address, --workers: the Ray part of `engine_options` (analyze's embeddings)."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: one asyncio process; ray: Ray Data workers (resumable; docs/scale.md)"),
        click.option("--ray-address", default=None,
                     help="Ray cluster to join (e.g. 10.0.0.1:6379 or auto); default: $RAY_ADDRESS if set, else a "
                     "new local Ray (even where `ray start` runs one here)"),
        click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 100000),
                     help="Ray workers (actors), each with its own model client"),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def engine_options(fn: F) -> F:
    """--engine local|ray, --ray-address, --workers, --shard-size, --shard-format for batch commands."""
    options = [
        click.option("--shard-size", default=1000, show_default=True, type=click.IntRange(1, None),
                     help="about this many conversations per shard (the unit of work and of resume)"),
        click.option("--shard-format", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True,
                     help="file format of the output shards"),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return ray_options(fn)


def model_recipe(model_spec: str, base_url: str | None, cache_path: str | None, no_cache: bool,
                 offline: bool, **kwargs: Any) -> Any:
    """What each Ray worker needs to build the same Model the options describe (`build_model`'s twin)."""
    from thoughttrace.batch import ModelRecipe

    cache = None if no_cache else (str(Path(cache_path).resolve()) if cache_path else "default")
    return ModelRecipe(spec=model_spec, base_url=resolve_base_url(base_url), cache=cache, offline=offline,
                       kwargs=_with_timeout(model_spec, kwargs))


def run_on_ray(job: Any, file: str | Path, workdir: str | Path, recipes: Any, *, ray_address: str | None,
               workers: int, shard_size: int, shard_format: str, skip_invalid: bool = False,
               shards_are_output: bool = False) -> Any:
    """The one `--engine ray` path of every batch command: shards of FILE on Ray Data workers into WORKDIR.

    Returns the engine's BatchResult; its errors (and a worker's, which Ray wraps) become one clear line.
    `shards_are_output`: the shards are what the user reads (label); every other job writes the local
    engine's files from its shards, which must then be JSONL (Parquet cannot tell a null from a missing key).
    """
    import sys

    from thoughttrace.batch import BatchError, run_batch, worker_error

    if shard_format != "jsonl" and not shards_are_output:
        raise UserFacingError(f"--shard-format {shard_format} is for `label`, whose shards are its output; this job "
                              "writes its usual output files from JSONL shards: drop --shard-format")

    try:
        return run_batch(job, file, workdir, recipes, engine="ray", ray_address=ray_address, workers=workers,
                         shard_rows=shard_size, shard_format=shard_format, skip_invalid=skip_invalid,
                         progress=sys.stderr.isatty())
    except BatchError as exc:
        raise UserFacingError(str(exc)) from exc
    except Exception as exc:  # a worker's error arrives wrapped by Ray: show its one line
        if type(exc).__module__.startswith("ray"):
            raise UserFacingError(worker_error(exc)) from exc
        raise


def batch_usage(result: Any, roles: dict[str, str] | None = None) -> dict[str, Any]:
    """A Ray run's usage per model string, printed like `print_usage` (with each model's role when given)."""
    out: dict[str, Any] = {}
    cumulative = getattr(result, "cumulative", {}) or {}
    for spec, rep in result.usage_by_model.items():
        role = (roles or {}).get(spec)
        click.echo(rep.summary_line() + (f" [{role}: {spec}]" if role else f" [{spec}]"), err=True)
        # this run's usage, and every run's into this output (killed workers included), both with by_endpoint
        out[spec] = ({"role": role} if role else {}) | rep.model_dump() | {"cumulative": cumulative.get(spec, {})}
    return out


def build_model(model_spec: str, base_url: str | None, cache_path: str | None, no_cache: bool, offline: bool,
                **kwargs: Any) -> Any:
    """The Model the options describe."""
    from thoughttrace.llm import get_model

    cache: Any = False if no_cache else (Path(cache_path) if cache_path else True)
    kwargs = _with_timeout(model_spec, kwargs)
    if base_url:
        kwargs["base_url"] = base_url
    return get_model(model_spec, cache=cache, offline=offline, **kwargs)


def print_usage(*models: Any) -> dict[str, Any]:
    """Print the usage line of a run to stderr and return the report as a dict for output files."""
    reports = [m.usage.report() for m in models if m is not None]
    merged: dict[str, Any] = {"format_version": 1, "models": {}}
    for m, rep in zip([m for m in models if m is not None], reports):
        click.echo(rep.summary_line() + f" [{m.spec}]", err=True)
        merged["models"][m.spec] = rep.model_dump()
    return merged


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def wrap(fn: F) -> F:
    """Decorator for command bodies: typed errors become friendly ones."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        with friendly_errors():
            return fn(*args, **kwargs)

    return inner  # type: ignore[return-value]
