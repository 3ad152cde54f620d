"""`thoughttrace analyze FILE --out DIR`: the release's analyses as report.html + figures + stats.json."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .common import UserFacingError, build_model, echo_json, model_options, print_usage, ray_options, wrap


def _compare_spec(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = Path(v).stem, v
        if not Path(path).exists():
            raise UserFacingError(f"--compare {v}: no such file (give PATH or NAME=PATH)")
        out[name] = path
    return out


@click.command("analyze")
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--compare", multiple=True, metavar="[NAME=]PATH",
              help="another chat-log file in the ThoughtTrace schema (e.g. WildChat after `data import`) to "
                   "compare messages per conversation with; repeatable")
@click.option("--labels", "label_files", multiple=True, type=click.Path(dir_okay=False),
              help="labels JSONL from `thoughttrace label` applied over the file's own labels; repeatable")
@click.option("--stages", "n_stages", default=4, show_default=True, type=click.IntRange(2, 20),
              help="number of stage points (4 = the release's 0/33/67/100%)")
@click.option("--stage-position", type=click.Choice(["role", "conversation"]), default="role", show_default=True,
              help="position of a thought among its role's messages, or among all messages")
@click.option("--no-embeddings", is_flag=True, help="skip the semantic-shift analysis (no embedding model)")
@click.option("--embedding-model", default="minilm", show_default=True,
              help="'minilm' (offline all-MiniLM-L6-v2), a sentence-transformers directory or a hub name")
@click.option("--embedding-cache", default=None, type=click.Path(dir_okay=False),
              help="vector cache file (default: embeddings.sqlite beside the model cache)")
@click.option("--max-pairs", default=20000, show_default=True, type=click.IntRange(1, None),
              help="text pairs per kind for the semantic shift (reservoir-sampled beyond this)")
@click.option("--projection", type=click.Choice(["auto", "umap", "pca"]), default="auto", show_default=True)
@click.option("--relations", is_flag=True, help="label turn relations with an LLM (implied by --model)")
@click.option("--relation-method", type=click.Choice(["generate", "logprobs"]), default="generate",
              show_default=True)
@click.option("--relation-limit", default=None, type=click.IntRange(1, None),
              help="label at most this many user turns (a quick look on big files)")
@model_options(default="")
@click.option("--skip-invalid", is_flag=True, help="skip bad lines instead of failing")
@click.option("--title", default="ThoughtTrace analysis", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print stats.json to stdout")
@ray_options
@wrap
def command(file: str, out_dir: str, compare: tuple[str, ...], label_files: tuple[str, ...], n_stages: int,
            stage_position: str, no_embeddings: bool, embedding_model: str, embedding_cache: str | None,
            max_pairs: int, projection: str, relations: bool, relation_method: str, relation_limit: int | None,
            model_spec: str, base_url: str | None, cache_path: str | None, no_cache: bool, offline: bool,
            skip_invalid: bool, title: str, as_json: bool, engine: str, ray_address: str | None,
            workers: int) -> None:
    """Analyse FILE (JSONL in the ThoughtTrace schema, a Parquet export or an HF directory) into DIR.

    Without --model/--relations no LLM is called; turn relations need one. With --engine ray the
    embedding step (semantic shift) runs on Ray workers; the rest streams the file here.
    """
    from thoughttrace.analysis import AnalysisOptions, analyze_file, load_label_records

    if not Path(file).exists():
        raise UserFacingError(f"{file}: no such file; check the path")
    from thoughttrace.outputs import output_dir

    with output_dir(out_dir) as out:  # a failed analysis leaves no folder it made
        files = [Path(p) for p in label_files]
        relation_source: dict[str, Any] = {}
        usage: dict[str, Any] | None = None
        if relations or model_spec:
            from thoughttrace.label import label_dataset

            spec = model_spec or "local"
            model = build_model(spec, base_url, cache_path, no_cache, offline)
            rel_file = out / "relations.labels.jsonl"
            summary = label_dataset(file, model, rel_file, kinds=("relation",), method=relation_method,  # type: ignore[arg-type]
                                    limit=relation_limit, skip_invalid=skip_invalid, progress=sys.stderr.isatty())
            files.append(rel_file)
            usage = print_usage(model)
            relation_source = {"model": spec, "method": relation_method, "file": rel_file.name, **summary.as_dict(),
                               "description": f"{relation_method} with {spec}; End is structural"}
            click.echo(f"relations: {summary.labelled} labelled, {summary.unlabelled} unlabelled, "
                       f"{summary.skipped} already done ({rel_file})", err=True)
        overlay = load_label_records(files) if files else None
        opts = AnalysisOptions(
            n_stages=n_stages, stage_position=stage_position,  # type: ignore[arg-type]
            embeddings=not no_embeddings, embedding_model=embedding_model,
            embedding_cache=embedding_cache or True, max_pairs=max_pairs, projection=projection,  # type: ignore[arg-type]
            skip_invalid=skip_invalid, progress=sys.stderr.isatty(), title=title, compare=_compare_spec(compare),
        )
        embedder = None
        if engine == "ray" and not no_embeddings:
            from thoughttrace.analysis.ray_embed import RayEmbedder

            embedder = RayEmbedder(embedding_model, cache=embedding_cache or True, workers=workers,
                                   ray_address=ray_address)
        try:
            result = analyze_file(file, out, opts, labels=overlay, relation_source=relation_source, usage=usage,
                                  embedder=embedder)
        except Exception as exc:  # a worker's error arrives wrapped by Ray: show its one line
            if type(exc).__module__.startswith("ray"):
                from thoughttrace.batch import worker_error

                raise UserFacingError(worker_error(exc)) from exc
            raise
        if as_json:
            echo_json(result.stats)
        else:
            t1 = result.stats["overview"]["table1"]
            click.echo(f"analysed {t1['conversations']:,} conversations, {t1['messages']:,} messages, "
                       f"{t1['thoughts']:,} thoughts -> {result.report_path} ({len(result.stats['figures'])} figures), "
                       f"{result.stats_path}")
            for warning in result.stats.get("warnings", []):
                click.echo(f"warning: {warning}", err=True)
