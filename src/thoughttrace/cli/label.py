"""`thoughttrace label` (LLM labelling into a resumable JSONL) and `thoughttrace label-eval` (agreement)."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from .common import (
    UserFacingError,
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

KIND_CHOICE = click.Choice(["reason", "reaction", "domain", "relation"])


@click.command("label")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(),
              help="labels JSONL (appended to and resumed from; OUT.meta.json gets counts and usage); with "
                   "--engine ray a directory of shards")
@click.option("--kind", "kinds", multiple=True, type=KIND_CHOICE,
              help="what to label; repeatable (default: reason and reaction)")
@click.option("--method", type=click.Choice(["generate", "logprobs"]), default="generate", show_default=True,
              help="generate: parse the named label; logprobs: option-number probabilities, two orders")
@click.option("--only-missing", is_flag=True, help="label only thoughts/domains without a label")
@limit_option("one thing to label (a thought, a domain or a turn relation, as --kind picks)")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1, 1024))
@click.option("--max-attempts", default=3, show_default=True, type=click.IntRange(1, 10),
              help="tries per item, the parse error fed back each time; then recorded as unlabelled")
@click.option("--constrained/--no-constrained", default=True, show_default=True,
              help="send a JSON schema (label enum) for constrained decoding; turn off for servers without "
                   "structured-output support")
@click.option("--retry-unlabelled", is_flag=True, help="on resume, try the unlabelled items again")
@click.option("--skip-invalid", is_flag=True, help="skip bad lines instead of failing")
@click.option("--json", "as_json", is_flag=True, help="print the run summary as JSON")
@model_options(default="local")
@engine_options
@wrap
def label_command(file: str, out: str, kinds: tuple[str, ...], method: str, only_missing: bool, limit: int | None,
                  batch_size: int, max_attempts: int, constrained: bool, retry_unlabelled: bool,
                  skip_invalid: bool, as_json: bool, model_spec: str, base_url: str | None, cache_path: str | None,
                  no_cache: bool, offline: bool, engine: str, ray_address: str | None, workers: int,
                  shard_size: int, shard_format: str) -> None:
    """Label the thoughts (and optionally domains, turn relations) of FILE with an LLM into OUT."""
    from thoughttrace.label import LabelFileError, label_dataset, write_meta
    from thoughttrace.label.labeler import labels_file_summary

    if not Path(file).exists():
        raise UserFacingError(f"{file}: no such file; check the path")
    if engine == "local" and Path(out).is_dir():
        raise UserFacingError(f"{out} is a directory; with --engine local, --out names a labels JSONL file "
                              "(a directory of shards is what --engine ray writes)")
    if engine == "ray":
        _label_on_ray(file, out, kinds or ("reason", "reaction"), method, only_missing, limit, batch_size,
                      max_attempts, constrained, retry_unlabelled, skip_invalid, as_json,
                      model_recipe(model_spec, base_url, cache_path, no_cache, offline), ray_address, workers,
                      shard_size, shard_format)
        return
    model = build_model(model_spec, base_url, cache_path, no_cache, offline)
    try:
        summary = label_dataset(file, model, out, kinds=kinds or ("reason", "reaction"), method=method,  # type: ignore[arg-type]
                                only_missing=only_missing, limit=limit, batch_size=batch_size,
                                max_attempts=max_attempts, retry_unlabelled=retry_unlabelled,
                                skip_invalid=skip_invalid, progress=sys.stderr.isatty(), constrained=constrained)
    except LabelFileError as exc:
        raise UserFacingError(str(exc)) from exc
    usage = print_usage(model)
    # `summary`: what the labels file holds after this run (a rerun that only skips must not report zeros);
    # `summary_this_run`: what this run did
    meta = {"input": file, "labels": out, "model": model_spec, "method": method, "constrained": constrained,
            "kinds": list(kinds or ("reason", "reaction")), "summary": labels_file_summary(out),
            "summary_this_run": summary.as_dict(), "usage": usage}
    meta_path = write_meta(out, meta)
    if as_json:
        echo_json(meta)
    else:
        click.echo(f"{summary.labelled} labelled, {summary.unlabelled} unlabelled, {summary.skipped} already done "
                   f"-> {out} ({meta_path.name})")


def _label_on_ray(file: str, out: str, kinds: tuple[str, ...], method: str, only_missing: bool, limit: int | None,
                  batch_size: int, max_attempts: int, constrained: bool, retry_unlabelled: bool,
                  skip_invalid: bool, as_json: bool, recipe: object, ray_address: str | None, workers: int,
                  shard_size: int, shard_format: str) -> None:
    """`label --engine ray`: shards of FILE on Ray Data workers into the directory OUT, plus OUT.meta.json."""
    from thoughttrace.label import write_meta
    from thoughttrace.label.batch_job import LabelShardJob
    from thoughttrace.label.run import check_kinds

    if limit is not None:
        raise UserFacingError("--limit is for --engine local; with --engine ray, label a smaller input file")
    if retry_unlabelled:
        raise UserFacingError("--retry-unlabelled is for --engine local; with --engine ray a finished shard is "
                              "final (delete its part-NNNNN.done.json to redo it)")
    job = LabelShardJob(kinds=tuple(check_kinds(kinds)), method=method, max_attempts=max_attempts,  # type: ignore[arg-type]
                        constrained=constrained, only_missing=only_missing, batch_size=batch_size)
    result = run_on_ray(job, file, out, recipe, ray_address=ray_address, workers=workers, shard_size=shard_size,
                        shard_format=shard_format, skip_invalid=skip_invalid, shards_are_output=True)
    from thoughttrace.batch.engine import add_counts

    # `summary`: the whole output (every finished shard, as the local engine counts its labels file);
    # `summary_this_run`: what this run did
    summary = {**result.summary, "skipped_done": result.skipped_summary.get("items", 0)}
    summary["items"] = summary.get("items", 0) + summary["skipped_done"]
    whole = add_counts(json.loads(json.dumps(result.summary)), result.skipped_summary)
    whole.pop("skipped_done", None)
    usage = {"format_version": 1, "models": {recipe.spec: result.usage.model_dump()},  # type: ignore[attr-defined]
             "cumulative": result.cumulative, "runs": result.ledger_runs}
    click.echo(result.usage.summary_line() + f" [{recipe.spec}]", err=True)  # type: ignore[attr-defined]
    meta = {"input": file, "labels": out, "model": recipe.spec, "method": method,  # type: ignore[attr-defined]
            "constrained": constrained, "kinds": list(kinds), "summary": whole, "summary_this_run": summary,
            "usage": usage,
            "engine": "ray", "shards": result.n_shards, "shards_done_before": result.done_before,
            "shard_format": shard_format}
    meta_path = write_meta(out.rstrip("/"), meta)
    if as_json:
        echo_json(meta)
    else:
        click.echo(f"{summary.get('labelled', 0)} labelled, {summary.get('unlabelled', 0)} unlabelled, "
                   f"{summary['skipped_done']} already done -> {out}/shards ({result.n_shards} shards, "
                   f"{meta_path.name})")


@contextlib.contextmanager
def _as_labels_file(path: str) -> Iterator[str]:
    """A labels JSONL for `path`: itself, or the shards of an `--engine ray` output merged into a temp file."""
    if not Path(path).is_dir():
        yield path
        return
    from thoughttrace.batch import BatchError, iter_records

    with tempfile.TemporaryDirectory(prefix="thoughttrace-labels-") as tmp:
        merged = Path(tmp) / "labels.jsonl"
        try:
            with open(merged, "w", encoding="utf-8") as fh:
                for rec in iter_records(path):
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        except BatchError as exc:
            raise UserFacingError(str(exc)) from exc
        yield str(merged)


@click.command("label-eval")
@click.argument("reference", type=click.Path(dir_okay=False))
@click.argument("predictions", type=click.Path())
@click.option("--kind", "kinds", multiple=True, type=KIND_CHOICE, help="kinds to evaluate (default: all present)")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="also write the metrics as JSON here")
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
@wrap
def label_eval_command(reference: str, predictions: str, kinds: tuple[str, ...], out: str | None,
                       as_json: bool) -> None:
    """Agreement of PREDICTIONS (a labels JSONL or an --engine ray output directory) with REFERENCE.

    REFERENCE is a dataset with labels, or another labels file.
    """
    from thoughttrace.label import evaluate_labels, format_agreement

    for p in (reference, predictions):
        if not Path(p).exists():
            raise UserFacingError(f"{p}: no such file; check the path")
    with _as_labels_file(predictions) as pred_file:
        result = evaluate_labels(reference, pred_file, kinds or ("reason", "reaction", "domain", "relation"))
        result["predictions"] = predictions
    if out:
        Path(out).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    if as_json:
        echo_json(result)
    else:
        for kind, m in result["kinds"].items():
            click.echo(format_agreement(kind, m))
            click.echo("")
