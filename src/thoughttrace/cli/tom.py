"""`thoughttrace tom solve|bench`: the AutoToM engine and the baselines from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import (
    UserFacingError,
    batch_usage,
    build_model,
    echo_json,
    engine_options,
    limit_option,
    model_options,
    model_recipe,
    print_usage,
    run_on_ray,
    wrap,
)

METHOD_CHOICE = click.Choice(["autotom", "direct", "cot", "simtom"])


@click.group(name="tom")
def group() -> None:
    """Theory of mind: answer questions about what agents believe, want and will do."""


BELIEF_OF_STATE_HELP = ("autotom, questions with two or more agents: infer the outer agent's belief of the world "
                        "state and what it believes the inner agent perceived (default on; docs/tom.md)")


def _autotom_options(method: str, k: int | None, budget: int | None, belief_of_state: bool | None) -> dict[str, int | bool]:
    if method != "autotom" and (k is not None or budget is not None or belief_of_state is not None):
        raise UserFacingError("--k, --budget and --(no-)belief-of-state apply to --method autotom only")
    opts: dict[str, int | bool] = {}
    if k is not None:
        opts["k_hypotheses"] = k
    if budget is not None:
        opts["likelihood_budget"] = budget
    if belief_of_state is not None:
        opts["belief_of_state"] = belief_of_state
    return opts


@group.command("solve")
@click.option("--story", required=True, help="the story text (or @FILE to read it from a file)")
@click.option("--question", required=True, help="the question about an agent's mind")
@click.option("--choice", "choices", multiple=True, required=True, help="an answer choice (repeat, at least 2)")
@click.option("--method", type=METHOD_CHOICE, default="autotom", show_default=True)
@click.option("--k", "k", type=click.IntRange(1, 5), default=None, help="autotom: hypotheses per choice (default 1)")
@click.option("--budget", type=click.IntRange(1, 1000), default=None,
              help="autotom: most distinct likelihood requests per question, the initial model included (default 40)")
@click.option("--belief-of-state/--no-belief-of-state", default=None, help=BELIEF_OF_STATE_HELP)
@click.option("--explain", is_flag=True, help="print the full trace as readable text")
@click.option("--json", "as_json", is_flag=True, help="print the answer, posterior, trace and usage as JSON")
@model_options()
@wrap
def solve_command(story: str, question: str, choices: tuple[str, ...], method: str, k: int | None,
                  budget: int | None, belief_of_state: bool | None, explain: bool, as_json: bool, model_spec: str,
                  base_url: str | None,
                  cache_path: str | None, no_cache: bool, offline: bool) -> None:
    """Answer one question; prints the answer (and with --explain, why)."""
    from thoughttrace.tom.methods import solve

    if story.startswith("@"):
        path = Path(story[1:])
        if not path.exists():
            raise UserFacingError(f"no such story file: {path}")
        story = path.read_text(encoding="utf-8")
    if len(choices) < 2:
        raise UserFacingError("give at least two --choice options")
    options = _autotom_options(method, k, budget, belief_of_state)
    model = build_model(model_spec, base_url, cache_path, no_cache, offline)
    answer = solve(model, story, question, list(choices), method=method, **options)
    usage = print_usage(model)
    if as_json:
        echo_json({**answer.model_dump(mode="json"), "run_usage": usage})
    elif explain:
        click.echo(answer.explain())
    else:
        click.echo(answer.summary())
        click.echo("posterior: " + ", ".join(f"{chr(65 + i)}={p:.3f}" for i, p in enumerate(answer.posterior)))
    if answer.error:
        click.echo(f"warning: {answer.error}", err=True)


@group.command("bench")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--method", type=METHOD_CHOICE, default="autotom", show_default=True)
@click.option("--split", type=click.Choice(["dev", "test", "all"]), default="dev", show_default=True)
@limit_option("one question, per benchmark in FILE (stratified by question type)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output directory (one per method and model: rows of another method are dropped)")
@click.option("--concurrency", type=click.IntRange(1, 256), default=1, show_default=True,
              help="questions in flight at once (the model layer also limits calls per endpoint)")
@click.option("--k", "k", type=click.IntRange(1, 5), default=None, help="autotom: hypotheses per choice")
@click.option("--budget", type=click.IntRange(1, 1000), default=None, help="autotom: most distinct likelihood requests per question, initial model included (default 40)")
@click.option("--belief-of-state/--no-belief-of-state", default=None, help=BELIEF_OF_STATE_HELP)
@click.option("--trace", "keep_trace", is_flag=True, help="keep each item's full trace in results.jsonl")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@model_options()
@engine_options
@wrap
def bench_command(file: str, method: str, split: str, limit: int | None, out_dir: str, concurrency: int,
                  k: int | None, budget: int | None, belief_of_state: bool | None, keep_trace: bool, as_json: bool, model_spec: str,
                  base_url: str | None, cache_path: str | None, no_cache: bool, offline: bool, engine: str,
                  ray_address: str | None, workers: int, shard_size: int, shard_format: str) -> None:
    """Run a method on a ToM item file (uniform JSONL); writes results.jsonl, summary.json, summary.md."""
    from thoughttrace.tom.harness import run_bench
    from thoughttrace.tom.items import read_items, select
    from thoughttrace.tom.methods import get_method

    options = _autotom_options(method, k, budget, belief_of_state)
    if engine == "ray":
        if limit is not None:
            raise UserFacingError("--limit is for --engine local (a stratified subset needs the whole file); with "
                                  "--engine ray, give a smaller item file")
        recipe = model_recipe(model_spec, base_url, cache_path, no_cache, offline)
        _bench_on_ray(file, method, None if split == "all" else split, out_dir, concurrency, options,
                      keep_trace, as_json, recipe, ray_address, workers, shard_size, shard_format)
        return
    items = select(read_items(file), split=None if split == "all" else split, limit=limit)
    if not items:
        raise UserFacingError(f"no items with split '{split}' in {file}; try --split all")
    model = build_model(model_spec, base_url, cache_path, no_cache, offline)
    summary = model.run(run_bench(items, get_method(method, **options), model, out_dir,
                                  concurrency=concurrency, keep_trace=keep_trace))
    usage = print_usage(model)
    (Path(out_dir) / "usage.json").write_text(json.dumps(usage, indent=2), encoding="utf-8")
    if as_json:
        echo_json(summary)
    else:
        click.echo((Path(out_dir) / "summary.md").read_text(encoding="utf-8"))


def _bench_on_ray(file: str, method: str, split: str | None, out_dir: str, concurrency: int, options: dict[str, int | bool],
                  keep_trace: bool, as_json: bool, recipe: object, ray_address: str | None, workers: int,
                  shard_size: int, shard_format: str) -> None:
    """`tom bench --engine ray`: shards of the item file in OUT/batch, then results.jsonl and ONE summary."""
    from thoughttrace.batch import write_merged
    from thoughttrace.tom.batch_job import ToMBenchShardJob
    from thoughttrace.tom.harness import read_results, write_summary_files

    out = Path(out_dir)
    job = ToMBenchShardJob(method=method, options=options, split=split, concurrency=concurrency, keep_trace=keep_trace)
    result = run_on_ray(job, file, out / "batch", recipe, ray_address=ray_address, workers=workers,
                        shard_size=shard_size, shard_format=shard_format)
    n = write_merged(out / "batch", out / "results.jsonl")
    if not n:
        raise UserFacingError(f"no items with split '{split}' in {file}; try --split all")
    models = batch_usage(result)
    spec = recipe.spec  # type: ignore[attr-defined]
    summary = write_summary_files(out, read_results(out / "results.jsonl"), method, spec,
                                  result.usage_by_model[spec].model_dump())
    (out / "usage.json").write_text(json.dumps({"format_version": 1, "models": models}, indent=2), encoding="utf-8")
    if as_json:
        echo_json({**summary, "engine": {"engine": "ray", "shards": result.n_shards,
                                         "shards_done_before": result.done_before}})
    else:
        click.echo((out / "summary.md").read_text(encoding="utf-8"))
