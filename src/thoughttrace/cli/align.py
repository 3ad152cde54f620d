"""`thoughttrace align ...`: thought-guided rewrites, preference pairs, DPO training, arena judging."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

_GUIDES = click.Choice(["thoughts", "messages", "none"])
_FORMATS = click.Choice(["conversational", "plain"])


@click.group("align")
def group() -> None:
    """Turn users' reactions into training signal: rewrite -> pairs -> train -> answer -> arena.

    See docs/align.md for the full experiment (thought- vs message-guided rewrites, DPO, Arena-Hard).
    """


def _meta_path(out: Path) -> Path:
    return out.with_name(out.name + ".meta.json")


@group.command("rewrite")
@click.argument("conversations", type=click.Path(dir_okay=False))
@click.option("--guide", type=_GUIDES, default="thoughts", show_default=True,
              help="what guides the rewrite: the user's reaction, their next message, or nothing")
@click.option("--reactions", type=click.Choice(["dissatisfied", "all"]), default="dissatisfied", show_default=True,
              help="rewrite answers with a dissatisfied reaction only, or every answer with a reaction")
@click.option("--all-turns", is_flag=True,
              help="also rewrite answers with no next user message (the 'messages' guide skips them)")
@click.option("--max-history-chars", type=int, default=None, help="keep only the last N chars of the history")
@click.option("--max-answer-chars", type=int, default=None, help="truncate long answers shown to the rewriter")
@click.option("--max-tokens", type=click.IntRange(1, None), default=384, show_default=True,
              help="rewrite budget; rewrites cut off here are dropped by `align pairs` (sized for the local "
                   "model; with a remote model use the paper-scale 2048)")
@limit_option("one selected answer to rewrite")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="rewrites JSONL")
@model_options()
@engine_options
@wrap
def rewrite_cmd(conversations: str, guide: str, reactions: str, all_turns: bool, max_history_chars: int | None,
                max_answer_chars: int | None, max_tokens: int, limit: int | None, out_path: str, model_spec: str,
                base_url: str | None, cache_path: str | None, no_cache: bool, offline: bool, engine: str,
                ray_address: str | None, workers: int, shard_size: int, shard_format: str) -> None:
    """Rewrite assistant answers in CONVERSATIONS (ThoughtTrace JSONL) with a rewriter model."""
    from thoughttrace.align import RewriteSettings, rewrite_conversations
    from thoughttrace.align.records import write_json
    from thoughttrace.data import read_conversations

    settings = RewriteSettings(guide=guide, reactions=reactions, require_next_message=not all_turns,  # type: ignore[arg-type]
                               max_history_chars=max_history_chars, max_answer_chars=max_answer_chars,
                               max_tokens=max_tokens)
    if engine == "ray":
        if limit is not None:
            raise UserFacingError("--limit is for --engine local; with --engine ray, rewrite a smaller input file")
        _rewrite_on_ray(conversations, settings, Path(out_path),
                        model_recipe(model_spec, base_url, cache_path, no_cache, offline), ray_address, workers,
                        shard_size, shard_format)
        return
    model = build_model(model_spec, base_url, cache_path, no_cache, offline)
    out = Path(out_path)
    recorder = durable_usage(model, out.with_name(out.name + ".usage.jsonl"))
    rows = rewrite_conversations(read_conversations(conversations), model, settings, limit=limit, out=out)
    usage = finish_usage(recorder, print_usage(model))
    write_json({"format_version": 1, "input": conversations, "settings": settings.model_dump(),
                "rewriter": model.spec, "rewrites": len(rows), "usage": usage}, _meta_path(out))
    click.echo(f"wrote {len(rows)} rewrites ({guide}) to {out}")


def _rewrite_on_ray(conversations: str, settings: Any, out: Path, recipe: Any, ray_address: str | None,
                    workers: int, shard_size: int, shard_format: str) -> None:
    """`align rewrite --engine ray`: shards in OUT.batch/ (the resume source), then OUT and OUT.meta.json."""
    from thoughttrace.align.batch_job import RewriteShardJob
    from thoughttrace.align.records import write_json
    from thoughttrace.batch import write_merged

    if not Path(conversations).exists():
        raise UserFacingError(f"{conversations}: no such file; check the path")
    work = Path(str(out) + ".batch")
    result = run_on_ray(RewriteShardJob(settings=settings.model_dump(mode="json")), conversations, work, recipe,
                        ray_address=ray_address, workers=workers, shard_size=shard_size, shard_format=shard_format)
    n = write_merged(work, out)
    usage = {"format_version": 1, "models": batch_usage(result)}
    write_json({"format_version": 1, "input": conversations, "settings": settings.model_dump(),
                "rewriter": recipe.spec, "rewrites": n, "usage": usage, "engine": "ray", "shards": result.n_shards,
                "shards_done_before": result.done_before}, _meta_path(out))
    click.echo(f"wrote {n} rewrites ({settings.guide}) to {out} ({result.n_shards} shards in {work})")


def _filter_kwargs(min_chars: int, max_chars: int | None, max_ratio: float | None, fmt: str) -> dict[str, Any]:
    return {"min_chars": min_chars, "max_chars": max_chars, "max_ratio": max_ratio, "fmt": fmt}


_filter_options = [
    click.option("--format", "fmt", type=_FORMATS, default="conversational", show_default=True,
                 help="TRL conversational preference format (message lists) or plain strings"),
    click.option("--min-chars", type=int, default=20, show_default=True, help="drop pairs with a shorter side"),
    click.option("--max-chars", type=int, default=20000, show_default=True, help="drop pairs with a longer side"),
    click.option("--max-ratio", type=float, default=None,
                 help="drop pairs whose longer side is more than this many times the shorter"),
    click.option("--json", "as_json", is_flag=True, help="print the report as JSON"),
]


def _with_filter_options(fn: Any) -> Any:
    for opt in reversed(_filter_options):
        fn = opt(fn)
    return fn


@group.command("pairs")
@click.argument("rewrites", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="pairs JSONL")
@click.option("--keep-truncated", is_flag=True, help="keep rewrites that hit the rewriter's token limit")
@_with_filter_options
@wrap
def pairs_cmd(rewrites: tuple[str, ...], out_path: str, keep_truncated: bool, fmt: str, min_chars: int,
              max_chars: int | None, max_ratio: float | None, as_json: bool) -> None:
    """Build preference pairs (chosen = rewrite, rejected = original) from REWRITES files."""
    from thoughttrace.align import PairReport, Rewrite, pairs_from_rewrites
    from thoughttrace.align.records import read_models, write_jsonl

    rows = [r for f in rewrites for r in read_models(f, Rewrite, "rewrite (from `align rewrite`)")]
    report = PairReport()
    pairs = pairs_from_rewrites(rows, report=report, keep_truncated=keep_truncated,
                                **_filter_kwargs(min_chars, max_chars, max_ratio, fmt))
    write_jsonl(pairs, out_path)
    _report(report.as_dict() | {"out": out_path}, as_json)


@group.command("import-pairs")
@click.argument("source_file", type=click.Path(dir_okay=False))
@click.option("--source", required=True, help="name recorded in each pair's provenance, e.g. wildchat")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="pairs JSONL")
@_with_filter_options
@wrap
def import_pairs_cmd(source_file: str, source: str, out_path: str, fmt: str, min_chars: int, max_chars: int | None,
                     max_ratio: float | None, as_json: bool) -> None:
    """Import another preference source (JSONL with prompt/chosen/rejected) as pairs."""
    from thoughttrace.align import PairReport, import_pairs
    from thoughttrace.align.records import write_jsonl

    report = PairReport()
    pairs = import_pairs(source_file, source=source, report=report,
                         **_filter_kwargs(min_chars, max_chars, max_ratio, fmt))
    write_jsonl(pairs, out_path)
    _report(report.as_dict() | {"out": out_path}, as_json)


def _report(rep: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(rep)
        return
    dropped = ", ".join(f"{k} {v}" for k, v in rep["dropped"].items()) or "none"
    click.echo(f"kept {rep['kept']} of {rep['input']} pairs (dropped: {dropped}); wrote {rep['out']}")


@group.command("train")
@click.argument("pairs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="run directory")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML file of DPO settings (see --print-config for every field)")
@click.option("--model", "model", default=None,
              help="base model: smollm2 (embedded), a .gguf path, a model directory or a hub name")
@click.option("--max-steps", type=int, default=None, help="override the config's max_steps")
@click.option("--max-length", type=int, default=None, help="override the config's max_length")
@click.option("--batch-size", type=int, default=None, help="override per_device_train_batch_size")
@click.option("--resume", is_flag=True, help="continue the run in --out from its last checkpoint")
@click.option("--print-config", is_flag=True, help="print the default config file and exit")
@click.option("--json", "as_json", is_flag=True, help="print the run summary as JSON")
@wrap
def train_cmd(pairs: tuple[str, ...], out_dir: str | None, config_path: str | None, model: str | None,
              max_steps: int | None, max_length: int | None, batch_size: int | None, resume: bool,
              print_config: bool, as_json: bool) -> None:
    """DPO-train a model on PAIRS files (TRL DPOTrainer, LoRA by default)."""
    from thoughttrace.align.train import default_config_text, load_config, train_dpo

    if print_config:
        click.echo(default_config_text(), nl=False)
        return
    if not pairs or not out_dir:
        raise click.UsageError("give one or more PAIRS files and --out DIR")
    settings = load_config(config_path, model=model, max_steps=max_steps, max_length=max_length,
                           per_device_train_batch_size=batch_size)
    summary = train_dpo(list(pairs), out_dir, settings, resume=resume)
    if as_json:
        echo_json(summary)
    else:
        fm = summary["final_metrics"]
        click.echo(f"trained {summary['steps']} steps on {summary['pairs']} pairs; final loss {fm['loss']:.4f}, "
                   f"margin {fm.get('rewards/margins') or 0:.4f}; saved {summary['output']}")


@group.command("answer")
@click.argument("questions", default="demo")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="answers JSONL (appended; answered questions are skipped)")
@click.option("--adapter", type=click.Path(file_okay=False), default=None,
              help="a run directory of `align train` (answers with its base model + adapter, via transformers)")
@click.option("--base-model", default=None,
              help="with --adapter: its base model when the run has no train_meta.json; alone: answer with this "
                   "model through transformers (the untrained baseline on the same engine as an adapter)")
@click.option("--name", default=None, help="the model's name in the arena (default: the model string)")
@click.option("--max-tokens", type=click.IntRange(1, None), default=384, show_default=True,
              help="answer budget (sized for the local model; arena-hard-auto's own answers use 4096 or more)")
@limit_option("one question to answer")
@model_options()
@wrap
def answer_cmd(questions: str, out_path: str, adapter: str | None, base_model: str | None, name: str | None,
               max_tokens: int, limit: int | None, model_spec: str, base_url: str | None, cache_path: str | None,
               no_cache: bool, offline: bool) -> None:
    """Answer QUESTIONS (a question JSONL, or 'demo') with --model, a trained --adapter or a --base-model."""
    from thoughttrace.align import answer_with_adapter, answer_with_model, load_questions

    qs = load_questions(questions, limit=limit)
    if adapter or base_model:
        rows = answer_with_adapter(qs, adapter, out_path, name=name, base_model=base_model, max_tokens=max_tokens)
    else:
        model = build_model(model_spec, base_url, cache_path, no_cache, offline)
        recorder = durable_usage(model, Path(out_path).with_name(Path(out_path).name + ".usage.jsonl"))
        rows = answer_with_model(qs, model, out_path, name=name, max_tokens=max_tokens)
        finish_usage(recorder, print_usage(model))
    click.echo(f"{len(rows)} answers in {out_path}")


@group.command("arena")
@click.argument("questions", default="demo")
@click.option("--answers", "answer_files", multiple=True, type=click.Path(),
              help="answers files or model_answer/ folders (ThoughtTrace or arena-hard-auto format; repeat)")
@click.option("--baseline", default=None,
              help="the baseline model (required unless QUESTIONS is an arena-hard-auto folder: per-category then)")
@click.option("--category-baseline", "category_baselines", multiple=True, metavar="CATEGORY=MODEL",
              help="baseline of one category (arena-hard-auto folders; default: its per-category baselines)")
@click.option("--judgments-from", default=None,
              help="score the folder's existing model_judgment/NAME/ files instead of judging again")
@click.option("--freeze-style", type=click.Path(exists=True, dir_okay=False), default=None,
              help="results.json of an earlier run: reuse its style coefficients (adding a model then cannot "
                   "move the others' style-controlled scores)")
@click.option("--export-arena-hard", "export_dir", type=click.Path(file_okay=False), default=None,
              help="also write the answers and judgments in arena-hard-auto's format under this folder")
@click.option("--judge", "judge_spec", default="local", show_default=True, help="judge model string")
@click.option("--base-url", default=None, help="server URL for an openai-compatible/NAME judge")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None, help="cache file")
@click.option("--no-cache", is_flag=True, help="do not read or write the response cache")
@click.option("--offline", is_flag=True, help="replay judgments from the cache only")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="directory for judgments.jsonl, results.json and results.md")
@click.option("--max-tokens", type=click.IntRange(1, None), default=512, show_default=True,
              help="judge reply budget (sized for the local model; a paper-scale judge gets 1024 or more)")
@click.option("--retries", type=int, default=2, show_default=True, help="re-asks when no verdict can be parsed")
@click.option("--samples", type=click.IntRange(min=1), default=100, show_default=True,
              help="bootstrap resamples (arena-hard-auto uses 100)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--method", type=click.Choice(["arena-hard-auto", "thoughttrace"]), default="arena-hard-auto",
              show_default=True,
              help="scoring: arena-hard-auto's show_result.py (90% CIs over battle rows, a question with a null game "
                   "dropped whole, centred density style features) or ThoughtTrace's (95% CIs over questions, "
                   "per-game null drop, uncentred count features); see docs/align.md")
@click.option("--category", "categories", multiple=True, metavar="CATEGORY",
              help="arena-hard-auto folders: score only this category (repeat for several)")
@limit_option("one question whose answers are judged")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@wrap
def arena_cmd(questions: str, answer_files: tuple[str, ...], baseline: str | None, category_baselines: tuple[str, ...],
              judgments_from: str | None, freeze_style: str | None, export_dir: str | None, judge_spec: str,
              base_url: str | None, cache_path: str | None, no_cache: bool, offline: bool, out_dir: str,
              max_tokens: int, retries: int, samples: int, seed: int, method: str, categories: tuple[str, ...],
              limit: int | None, as_json: bool) -> None:
    """Judge candidates against --baseline on QUESTIONS (pairwise, both orders) and print the results table.

    QUESTIONS may be an arena-hard-auto data folder (data/<bench>/): its questions, model_answer/ files and
    (with --judgments-from) model_judgment/ files are read, and each category is scored against its baseline.
    """
    if Path(questions).is_dir():
        from .align_arena_hard import arena_hard_folder

        arena_hard_folder(questions, answer_files, baseline, category_baselines, judgments_from, freeze_style,
                          export_dir, judge_spec, base_url, cache_path, no_cache, offline, out_dir, max_tokens,
                          retries, samples, seed, limit, as_json, method=method, categories=categories)
        return
    if categories:
        raise UserFacingError("--category is for arena-hard-auto folders (QUESTIONS a data/<bench>/ folder)")
    if baseline is None:
        raise UserFacingError("--baseline is required (unless QUESTIONS is an arena-hard-auto data folder)")
    if not answer_files:
        raise UserFacingError("give the answers files with --answers FILE (baseline and candidates)")
    from thoughttrace.align import (
        arun_games,
        index_answers,
        load_questions,
        results_markdown,
        score_arena,
    )
    from thoughttrace.align.records import write_json

    qs = load_questions(questions, limit=limit)
    from thoughttrace.align.arena_hard import read_answers

    answers = index_answers([a for f in answer_files for a in read_answers(f)])
    judge = build_model(judge_spec, base_url, cache_path, no_cache, offline)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recorder = durable_usage(judge, out / "usage.jsonl")
    judgments = judge.run(arun_games(qs, answers, baseline, judge, out=out / "judgments.jsonl",
                                     max_tokens=max_tokens, retries=retries))
    frozen, centre = _frozen_style(freeze_style)
    result = score_arena(judgments, answers, baseline, samples=samples, seed=seed, frozen_style=frozen,
                         frozen_centre=centre, method=method)
    if export_dir:
        from thoughttrace.align.arena_hard import write_answers, write_judgments

        write_answers([a for m in answers.values() for a in m.values()], qs, Path(export_dir) / "model_answer")
        write_judgments(judgments, qs, Path(export_dir) / "model_judgment")
    usage = finish_usage(recorder, print_usage(judge))
    table = results_markdown(result) + f"\nUsage (all runs into {out}, resumes included): {usage['summary']}\n"
    write_json(result.as_dict() | {"usage": usage, "questions": questions}, out / "results.json")
    (out / "results.md").write_text(table, encoding="utf-8")
    if as_json:
        echo_json(result.as_dict())
    else:
        click.echo(table, nl=False)


def _frozen_style(path: str | None) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """(style coefficients, their centre) of an earlier results.json (per category files hold one per category)."""
    if path is None:
        return None, None
    import json

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    coef = data.get("style_coefficients")
    if not isinstance(coef, dict) or not coef:
        raise UserFacingError(f"{path}: no style_coefficients; give the results.json of an earlier arena run")
    centre = data.get("style_centre")
    return ({str(k): float(v) for k, v in coef.items()},
            {str(k): float(v) for k, v in centre.items()} if isinstance(centre, dict) else None)


def durable_usage(model: Any, ledger: Path) -> Any:
    """Append every call of `model` to the `ledger` file as it happens (a killed run's calls still count)."""
    from thoughttrace.llm.ledger import RunRecorder

    recorder = RunRecorder(ledger)
    recorder.attach(model)
    return recorder


def finish_usage(recorder: Any, usage: dict[str, Any]) -> dict[str, Any]:
    """This run's usage plus every run's into the folder, with "N calls over K runs" (also on stderr)."""
    from thoughttrace.llm.ledger import calls_over_runs

    led = recorder.finish(usage["models"])
    summary = calls_over_runs(led["cumulative"], led["runs"])
    click.echo(f"usage, all runs recorded in {recorder.ledger.path}: {summary}", err=True)
    return usage | {"cumulative": led["cumulative"], "runs": led["runs"], "summary": summary}
