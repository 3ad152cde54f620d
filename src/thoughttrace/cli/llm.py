"""`thoughttrace llm ...`: check that a model answers."""

from __future__ import annotations

import time

import click

from thoughttrace.llm import SPEC_HELP

from .common import build_model, echo_json, model_options, print_usage, wrap


@click.group("llm", help=f"Model layer commands. {SPEC_HELP}.")
def group() -> None:
    pass


@group.command("ping")
@model_options()
@click.option("--prompt", default="Reply with one word: ready?", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@wrap
def ping(model_spec: str, base_url: str | None, cache_path: str | None, no_cache: bool, offline: bool,
         prompt: str, as_json: bool) -> None:
    """Make one real call (uncached unless --cache is given) and print model, capabilities and latency."""
    model = build_model(model_spec, base_url, cache_path, no_cache or cache_path is None, offline)
    start = time.perf_counter()
    gen = model.generate(prompt, max_tokens=16)
    latency = time.perf_counter() - start
    result = {
        "model": model.model_id,
        "capabilities": sorted(model.capabilities),
        "latency_seconds": round(latency, 3),
        "reply": gen.text,
        "prompt_tokens": gen.usage.prompt_tokens,
        "completion_tokens": gen.usage.completion_tokens,
        "cached": gen.cached,
    }
    if as_json:
        echo_json(result)
    else:
        click.echo(f"model:        {result['model']}")
        click.echo(f"capabilities: {', '.join(result['capabilities'])}")
        click.echo(f"latency:      {latency:.2f} s")
        click.echo(f"reply:        {gen.text.strip()!r}")
    print_usage(model)
