"""`thoughttrace eval ...` and `thoughttrace simulate`: thin wrappers over `thoughttrace.evals`."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from .common import (
    UserFacingError,
    batch_usage,
    build_model,
    echo_json,
    engine_options,
    limit_option,
    model_recipe,
    run_on_ray,
    wrap,
)

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def first_items(items: Any, limit: int | None) -> list[Any]:
    """`evals.store.first_items`, imported late like the rest of the library (keeps `--help` fast)."""
    from thoughttrace.evals.store import first_items as take

    return take(items, limit)


def _connection_options(fn: F) -> F:
    for opt in reversed([
        click.option("--base-url", default=None, help="server URL for openai-compatible/NAME models"),
        click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
                     help="cache file (default: THOUGHTTRACE_CACHE or ~/.cache/thoughttrace/llm-cache.sqlite)"),
        click.option("--no-cache", is_flag=True, help="do not read or write the response cache"),
        click.option("--offline", is_flag=True, help="replay from the cache only; fail on a miss"),
        click.option("--max-connections", type=int, default=None,
                     help="concurrent requests per endpoint (openai-compatible servers)"),
    ]):
        fn = opt(fn)
    return fn


def _judge_options(fn: F) -> F:
    for opt in reversed([
        click.option("--judge", "-j", "judge_spec", default="local", show_default=True,
                     help="judge model string ('none' to skip judging)"),
        click.option("--judge2", "judge2_spec", default=None,
                     help="a second judge model: its scores are stored too and judge agreement is reported"),
        click.option("--judge-samples", type=int, default=1, show_default=True,
                     help="judge samples per item (temperature > 0 when above 1); mean and spread are kept"),
        click.option("--judge-temperature", type=float, default=None,
                     help="judge temperature (default 0, or 0.7 with several samples)"),
        click.option("--no-swap", is_flag=True, help="do not ask the judge both orders of a pair"),
        click.option("--judge-retries", type=int, default=2, show_default=True,
                     help="re-asks (with the parse error fed back) when a judge reply has no 'Score: N' line"),
        click.option("--judge-max-tokens", type=int, default=128, show_default=True),
    ]):
        fn = opt(fn)
    return fn


def _run_options(fn: F) -> F:
    for opt in reversed([
        click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True,
                     help="output folder: items.jsonl, summary.json, summary.md (an existing run is resumed)"),
        click.option("--concurrency", type=int, default=1, show_default=True, help="items evaluated at once"),
        click.option("--no-embeddings", is_flag=True, help="skip the embedding-cosine metric"),
        click.option("--max-context-chars", type=int, default=6000, show_default=True,
                     help="conversation characters a prompt shows (most recent first)"),
        click.option("--max-message-chars", type=int, default=1200, show_default=True,
                     help="characters of one message a prompt shows (head and tail kept)"),
        click.option("--max-tokens", type=int, default=None,
                     help="tokens the evaluated model may write per answer (default: per eval)"),
        click.option("--json", "as_json", is_flag=True, help="print the summary as JSON"),
        click.option("--progress/--no-progress", default=None, help="progress bar (default: when stderr is a terminal)"),
    ]):
        fn = opt(fn)
    return fn


class _Models:
    """Models of one command, one per distinct spec (a local model's weights load once).

    With an --out folder every model built here logs each call to OUT/usage.jsonl as it happens (a
    `RunRecorder`), so a run killed by SIGTERM or SIGKILL is still counted by the resume's summary.
    """

    def __init__(self, opts: dict[str, Any]) -> None:
        self.opts = opts
        self.by_spec: dict[str, Any] = {}
        self.roles: dict[str, str] = {}
        self.recorder: Any = None

    @property
    def run_id(self) -> str | None:
        """The ledger id of this run's call lines (None when no model was built)."""
        return self.recorder.run if self.recorder is not None else None

    def _record(self, model: Any) -> None:
        if self.recorder is None:
            from thoughttrace.llm.ledger import RunRecorder

            if self.opts.get("out_dir"):
                self.recorder = RunRecorder(Path(self.opts["out_dir"]) / "usage.jsonl")
            elif self.opts.get("out_file"):  # `simulate --out FILE.jsonl`: the ledger sits beside it
                self.recorder = RunRecorder(Path(str(self.opts["out_file"]) + ".usage.jsonl"))
            else:
                return
        self.recorder.attach(model)

    def _extra(self) -> dict[str, Any]:
        return {"max_connections": self.opts["max_connections"]} if self.opts.get("max_connections") else {}

    def _role(self, spec: str, role: str) -> None:
        self.roles.setdefault(spec, role)
        if role not in self.roles[spec].split("+"):
            self.roles[spec] += f"+{role}"

    def get(self, spec: str, role: str) -> Any:
        if spec not in self.by_spec:
            self.by_spec[spec] = build_model(spec, self.opts.get("base_url"), self.opts.get("cache_path"),
                                             bool(self.opts.get("no_cache")), bool(self.opts.get("offline")),
                                             **self._extra())
            self._record(self.by_spec[spec])
        self._role(spec, role)
        return self.by_spec[spec]

    def recipe(self, spec: str, role: str) -> Any:
        """What a Ray worker needs to build the model `get` would build (the worker builds it, not us)."""
        r = model_recipe(spec, self.opts.get("base_url"), self.opts.get("cache_path"),
                         bool(self.opts.get("no_cache")), bool(self.opts.get("offline")), **self._extra())
        self._role(r.spec, role)
        return r

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        first = next(iter(self.by_spec.values()))
        return first.run(coro)  # type: ignore[no-any-return]

    def usage(self) -> dict[str, Any]:
        out = {}
        for spec, m in self.by_spec.items():
            rep = m.usage.report()
            click.echo(rep.summary_line() + f" [{self.roles[spec]}: {spec}]", err=True)
            out[spec] = {"role": self.roles[spec], **rep.model_dump()}
        return out

    def close(self) -> None:
        for m in self.by_spec.values():
            try:
                m.close()
            except Exception:  # closing is best effort at exit
                pass


def _judges(models: _Models, opts: dict[str, Any], rubric: str) -> tuple[Any, Any]:
    from thoughttrace.evals import Judge

    def make(spec: str | None, role: str) -> Any:
        if spec is None or spec.lower() == "none":
            return None
        return Judge(models.get(spec, role), rubric, samples=opts["judge_samples"],
                     temperature=opts["judge_temperature"], swap=not opts["no_swap"],
                     max_retries=opts["judge_retries"], max_tokens=opts["judge_max_tokens"])

    return make(opts["judge_spec"], "judge"), make(opts.get("judge2_spec"), "judge2")


def _embeddings(opts: dict[str, Any]) -> Any:
    from thoughttrace.evals import load_metric

    return load_metric(enabled=not opts["no_embeddings"])


def _read(path: str) -> list[Any]:
    from thoughttrace.data import read_conversations

    convs = read_conversations(path)
    if not convs:
        raise UserFacingError(f"{path}: no conversations in the file")
    return convs


#: settings that change an item's result; a resumed run must use the same ones (models and limits may change)
_RESUME_KEYS = ("method", "with_next_message", "judge_spec", "judge2_spec", "judge_samples", "judge_temperature",
                "no_swap", "judge_retries", "judge_max_tokens", "max_tokens", "max_context_chars",
                "max_message_chars", "no_embeddings")


def _check_resume(out_dir: str, command: str, opts: dict[str, Any]) -> None:
    """Refuse to resume into a folder whose items were made with other settings (they would mix)."""
    import json

    settings = {"command": command, **{k: opts[k] for k in _RESUME_KEYS if k in opts}}
    path = Path(out_dir) / "run.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8")).get("settings", {})
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise UserFacingError(
                f"{out_dir} holds a run made with other settings ({', '.join(diff)}); pass a new --out folder "
                "or the same settings to resume it"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format_version": 1, "settings": settings}, indent=2) + "\n", encoding="utf-8")


def _add_run_stats(total: Any, stats: Any) -> Any:
    """Counts of several models' runs added up (None + stats = stats)."""
    if total is None:
        return stats
    return total.model_copy(update={k: getattr(total, k) + getattr(stats, k)
                                    for k in ("computed", "skipped", "failed", "errors")})


def _finish(models: _Models, stats: Any, summary: dict[str, Any], out_dir: str, as_json: bool) -> None:
    click.echo(f"{stats.computed} items computed, {stats.skipped} resumed from {out_dir}/items.jsonl, "
               f"{stats.failed} failed; summary: {out_dir}/summary.md", err=True)
    if summary.get("usage_summary"):
        click.echo(f"usage, all runs recorded in {out_dir}/usage.jsonl: {summary['usage_summary']}", err=True)
    if as_json:
        echo_json(summary)
    else:
        click.echo((Path(out_dir) / "summary.md").read_text(encoding="utf-8"))
    if stats.failed:
        for e in stats.errors[:5]:
            click.echo(f"failed: {e}", err=True)


def _command_body(fn: F) -> F:
    """Collect options into one dict and close models at the end."""

    @functools.wraps(fn)
    def inner(**opts: Any) -> Any:
        models = _Models(opts)
        try:
            return fn(models, opts)
        finally:
            models.close()

    return wrap(inner)  # type: ignore[return-value]


@click.group(name="eval")
def group() -> None:
    """What thoughts are worth: thought inference, next-message prediction, simulator realism."""


@group.command("thought-inference")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "-m", "model_specs", multiple=True, default=["local"], show_default=True,
              help="model(s) that infer the thoughts; repeat for a per-model table")
@click.option("--method", type=click.Choice(["direct", "model-based"]), default="direct", show_default=True,
              help="direct prompting, or AutoToM inverse planning over candidate thoughts")
@click.option("--with-next-message", is_flag=True,
              help="also infer reactions with the user's next message as evidence (its own condition)")
@_judge_options
@_run_options
@limit_option("one thought to infer under one condition (a reaction counts twice with --with-next-message), "
              "in file order; per model")
@_connection_options
@engine_options
@_command_body
def thought_inference(models: _Models, opts: dict[str, Any]) -> None:
    """Infer each reason and reaction in FILE from its context and judge it against the real one (1-5)."""
    from thoughttrace.evals import ClipConfig, ItemStore, ThoughtInferenceEval
    from thoughttrace.evals.thought_inference import write_outputs

    if opts["engine"] == "ray":
        _eval_on_ray(models, opts, "thought-inference")
        return
    convs = _read(opts["file"])
    _check_resume(opts["out_dir"], "thought-inference", opts)
    for spec in opts["model_specs"]:
        models.get(spec, "model")
    judge, judge2 = _judges(models, opts, "thought_similarity")
    emb = _embeddings(opts)
    clip = ClipConfig(max_chars=opts["max_context_chars"], max_message_chars=opts["max_message_chars"])
    store = ItemStore(Path(opts["out_dir"]) / "items.jsonl")
    total = None
    for spec in opts["model_specs"]:
        ev = ThoughtInferenceEval(models.get(spec, "model"), judge, method=opts["method"], embeddings=emb,
                                  judge2=judge2, clip=clip, max_tokens=opts["max_tokens"] or 96)
        stats = models.run(ev.arun(convs, store, with_next_message=opts["with_next_message"], limit=opts["limit"],
                                   concurrency=opts["concurrency"], progress=opts["progress"]))
        total = _add_run_stats(total, stats)
    config = {k: opts[k] for k in ("file", "model_specs", "method", "with_next_message", "judge_spec", "judge2_spec",
                                   "judge_samples", "no_swap", "limit", "concurrency", "max_context_chars",
                                   "max_message_chars")}
    config["embeddings"] = emb.name if emb else None
    summary = write_outputs(opts["out_dir"], store, models.usage(), config, run=models.run_id)
    _finish(models, total, summary, opts["out_dir"], opts["as_json"])


@group.command("next-message")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "-m", "model_specs", multiple=True, default=["local"], show_default=True,
              help="model(s) that predict the message; repeat for a per-model table")
@click.option("--condition", "conditions", multiple=True, default=["history"], show_default=True,
              type=click.Choice(["history", "reaction", "thoughts", "reaction+reason", "inferred"]),
              help="what the prompt shows; repeat (thoughts = reaction; reaction+reason is an upper bound; "
                   "inferred = the model's own guess of the thoughts from the history)")
@click.option("--infer-method", type=click.Choice(["direct", "model-based"]), default="direct", show_default=True,
              help="how --condition inferred infers the thoughts (model-based: AutoToM posterior)")
@_judge_options
@_run_options
@limit_option("one target message under one condition, in file order with each message's conditions together "
              "(--limit 8 with 4 conditions: 2 messages); per model")
@_connection_options
@engine_options
@_command_body
def next_message(models: _Models, opts: dict[str, Any]) -> None:
    """Predict each user message in FILE from what came before, per condition; judge it (0-100)."""
    from thoughttrace.evals import ClipConfig, ItemStore, NextMessageEval, normalise_conditions
    from thoughttrace.evals.next_message import write_outputs

    if opts["engine"] == "ray":
        _eval_on_ray(models, opts, "next-message")
        return
    convs = _read(opts["file"])
    conditions = normalise_conditions(opts["conditions"])
    _check_resume(opts["out_dir"], "next-message", opts)
    for spec in opts["model_specs"]:
        models.get(spec, "model")
    judge, judge2 = _judges(models, opts, "message_similarity")
    emb = _embeddings(opts)
    clip = ClipConfig(max_chars=opts["max_context_chars"], max_message_chars=opts["max_message_chars"])
    store = ItemStore(Path(opts["out_dir"]) / "items.jsonl")
    total = None
    for spec in opts["model_specs"]:
        ev = NextMessageEval(models.get(spec, "model"), judge, embeddings=emb, judge2=judge2, clip=clip,
                             max_tokens=opts["max_tokens"] or 160, infer_method=opts["infer_method"])
        stats = models.run(ev.arun(convs, store, conditions, limit=opts["limit"], concurrency=opts["concurrency"],
                                   progress=opts["progress"]))
        total = _add_run_stats(total, stats)
    config = {k: opts[k] for k in ("file", "model_specs", "judge_spec", "judge2_spec", "judge_samples", "no_swap",
                                   "limit", "concurrency", "max_context_chars", "max_message_chars")}
    config["conditions"] = conditions
    config["infer_method"] = opts["infer_method"]
    config["embeddings"] = emb.name if emb else None
    summary = write_outputs(opts["out_dir"], store, models.usage(), config, run=models.run_id)
    _finish(models, total, summary, opts["out_dir"], opts["as_json"])


def _local_only(opts: dict[str, Any], *names: str) -> None:
    for name in names:
        if opts.get(name) not in (None, False, ()):
            flag = "--" + name.replace("_", "-")
            raise UserFacingError(f"{flag} is for --engine local; with --engine ray, give a smaller input file")


def _eval_on_ray(models: _Models, opts: dict[str, Any], which: str) -> None:
    """`eval thought-inference|next-message --engine ray`: shards on Ray workers, then ONE summary over all.

    OUT/batch holds the shards and done markers (the resume source); OUT/items.jsonl is then written from
    them in the local engine's order, and the eval's own `write_outputs` computes summary.json/summary.md
    over every record, exactly as the local engine does.
    """
    from thoughttrace.batch import write_merged
    from thoughttrace.evals import ItemStore, RunStats, normalise_conditions
    from thoughttrace.evals.batch_job import JUDGE, JUDGE2, EvalShardJob, JudgeSettings, model_role

    _local_only(opts, "limit")
    if not Path(opts["file"]).exists():
        raise UserFacingError(f"{opts['file']}: no such file; check the path")
    conditions = normalise_conditions(opts["conditions"]) if which == "next-message" else ["history"]
    _check_resume(opts["out_dir"], which, opts)
    recipes = {model_role(i): models.recipe(spec, "model") for i, spec in enumerate(opts["model_specs"])}
    judged = [spec is not None and spec.lower() != "none" for spec in (opts["judge_spec"], opts.get("judge2_spec"))]
    if judged[0]:
        recipes[JUDGE] = models.recipe(opts["judge_spec"], "judge")
    if judged[1]:
        recipes[JUDGE2] = models.recipe(opts["judge2_spec"], "judge2")
    emb = _embeddings(opts)  # fails here, before any shard, when the embedding model is missing
    job = EvalShardJob(
        eval=which, n_models=len(opts["model_specs"]), judged=judged[0], judged2=judged[1],  # type: ignore[arg-type]
        judge_settings=JudgeSettings(samples=opts["judge_samples"], temperature=opts["judge_temperature"],
                                     swap=not opts["no_swap"], max_retries=opts["judge_retries"],
                                     max_tokens=opts["judge_max_tokens"]),
        embeddings=emb is not None, clip=(opts["max_context_chars"], opts["max_message_chars"]),
        max_tokens=opts["max_tokens"], concurrency=opts["concurrency"], method=opts.get("method") or "direct",
        with_next_message=bool(opts.get("with_next_message")), conditions=tuple(conditions),
        infer_method=opts.get("infer_method") or "direct")
    out_dir = Path(opts["out_dir"])
    result = run_on_ray(job, opts["file"], out_dir / "batch", recipes, ray_address=opts["ray_address"],
                        workers=opts["workers"], shard_size=opts["shard_size"], shard_format=opts["shard_format"])
    write_merged(out_dir / "batch", out_dir / "items.jsonl", group_by="model")
    store = ItemStore(out_dir / "items.jsonl")
    usage = batch_usage(result, models.roles)
    if which == "thought-inference":
        from thoughttrace.evals.thought_inference import write_outputs

        config = {k: opts[k] for k in ("file", "model_specs", "method", "with_next_message", "judge_spec",
                                       "judge2_spec", "judge_samples", "no_swap", "limit", "concurrency",
                                       "max_context_chars", "max_message_chars")}
    else:
        from thoughttrace.evals.next_message import write_outputs  # type: ignore[no-redef]

        config = {k: opts[k] for k in ("file", "model_specs", "judge_spec", "judge2_spec", "judge_samples",
                                       "no_swap", "limit", "concurrency", "max_context_chars", "max_message_chars")}
        config["conditions"] = conditions
        config["infer_method"] = opts["infer_method"]
    config["embeddings"] = emb.name if emb else None
    summary = write_outputs(out_dir, store, usage, config)
    summary["engine"] = _engine_info(result, opts)
    stats = RunStats(total=len(store), skipped=int(result.skipped_summary.get("computed", 0)),
                     computed=int(result.summary.get("computed", 0)), failed=int(result.summary.get("failed", 0)),
                     errors=list(result.summary.get("first_errors", [])))
    _finish(models, stats, summary, opts["out_dir"], opts["as_json"])


def _engine_info(result: Any, opts: dict[str, Any]) -> dict[str, Any]:
    return {"engine": "ray", "shards": result.n_shards, "shards_done_before": result.done_before,
            "shard_format": opts["shard_format"], "workers": opts["workers"], "ray_address": opts["ray_address"]}


@group.command("simulator")
@click.argument("real", type=click.Path(exists=True, dir_okay=False))
@click.argument("simulated", type=click.Path(exists=True, dir_okay=False))
@click.option("--judge", "-j", "judge_spec", default=None,
              help="judge model for realism (1-5) of both sides; omit to compare statistics only")
@click.option("--judge-samples", type=int, default=1, show_default=True)
@click.option("--judge-temperature", type=float, default=None)
@click.option("--judge-retries", type=int, default=2, show_default=True)
@click.option("--judge-max-tokens", type=int, default=128, show_default=True)
@_run_options
@limit_option("one conversation; the first N of REAL and the first N of SIMULATED are compared")
@_connection_options
@_command_body
def simulator(models: _Models, opts: dict[str, Any]) -> None:
    """Compare SIMULATED conversations with REAL ones: length, thought types, stage curves, realism."""
    from thoughttrace.evals import ItemStore, Judge, SimulatorEval
    from thoughttrace.evals.simulator_eval import write_outputs

    real = _read(opts["real"])
    _check_resume(opts["out_dir"], "simulator", opts)
    sim = _read(opts["simulated"])
    judge = None
    if opts["judge_spec"] and opts["judge_spec"].lower() != "none":
        judge = Judge(models.get(opts["judge_spec"], "judge"), "realism", samples=opts["judge_samples"],
                      temperature=opts["judge_temperature"], max_retries=opts["judge_retries"],
                      max_tokens=opts["judge_max_tokens"])
    emb = _embeddings(opts)
    store = ItemStore(Path(opts["out_dir"]) / "items.jsonl")
    ev = SimulatorEval(judge, emb)
    real, sim = first_items(real, opts["limit"]), first_items(sim, opts["limit"])
    coro = ev.arun(real, sim, store, concurrency=opts["concurrency"], progress=opts["progress"])
    if models.by_spec:
        stats = models.run(coro)
    else:
        import asyncio

        stats = asyncio.run(coro)
    config = {"real": opts["real"], "simulated": opts["simulated"], "judge_spec": opts["judge_spec"],
              "judge_samples": opts["judge_samples"], "embeddings": emb.name if emb else None}
    summary = write_outputs(opts["out_dir"], real, sim, store, models.usage(), config, run=models.run_id)
    _finish(models, stats, summary, opts["out_dir"], opts["as_json"])


@group.command("judge-agreement")
@click.argument("items", type=click.Path(exists=True, dir_okay=False))
@click.option("--judge", "-j", "judge_spec", required=True, help="the second judge model")
@click.option("--judge-samples", type=int, default=1, show_default=True)
@click.option("--judge-temperature", type=float, default=None)
@click.option("--no-swap", is_flag=True, help="do not ask the judge both orders of a pair")
@click.option("--judge-retries", type=int, default=2, show_default=True)
@click.option("--judge-max-tokens", type=int, default=128, show_default=True)
@_run_options
@limit_option("one record of ITEMS, re-scored by the second judge")
@_connection_options
@_command_body
def judge_agreement(models: _Models, opts: dict[str, Any]) -> None:
    """Re-score an eval's ITEMS (items.jsonl) with a second judge: Pearson, Spearman, mean abs difference."""
    from thoughttrace.evals import ItemStore, Judge, Rejudge
    from thoughttrace.evals.judge_agreement import read_records, write_outputs

    records = read_records(opts["items"])
    _check_resume(opts["out_dir"], "judge-agreement", opts)

    records = first_items(records, opts["limit"])
    model = models.get(opts["judge_spec"], "judge")
    rj = Rejudge(lambda rubric: Judge(model, rubric, samples=opts["judge_samples"],
                                      temperature=opts["judge_temperature"], swap=not opts["no_swap"],
                                      max_retries=opts["judge_retries"], max_tokens=opts["judge_max_tokens"]))
    store = ItemStore(Path(opts["out_dir"]) / "items.jsonl")
    stats = models.run(rj.arun(records, store, concurrency=opts["concurrency"], progress=opts["progress"]))
    config = {"items": opts["items"], "judge_spec": opts["judge_spec"], "judge_samples": opts["judge_samples"]}
    summary = write_outputs(opts["out_dir"], store, models.usage(), config, run=models.run_id)
    _finish(models, stats, summary, opts["out_dir"], opts["as_json"])


@click.command("simulate")
@click.option("--task", "tasks", multiple=True, help="a task for the simulated user; repeat for several")
@click.option("--tasks-from", type=click.Path(exists=True, dir_okay=False),
              help="simulate the tasks of the real conversations in this file (task summary, else topic)")
@click.option("--per-task", type=int, default=1, show_default=True, help="conversations per task")
@click.option("--persona", default=None, help="who the user is (default: survey answers when --tasks-from has them)")
@click.option("--model", "-m", "model_spec", default="local", show_default=True, help="the assistant model")
@click.option("--user-model", "-u", "user_spec", default="local", show_default=True, help="the simulated user's model")
@click.option("--turns", type=int, default=4, show_default=True, help="at most this many user messages")
@click.option("--assistant-system", default=None, help="a system prompt for the assistant")
@click.option("--user-temperature", type=float, default=0.8, show_default=True)
@click.option("--user-max-tokens", type=int, default=200, show_default=True)
@click.option("--assistant-max-tokens", type=int, default=400, show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), required=True,
              help="output JSONL in the released schema (an existing file is resumed)")
@click.option("--concurrency", type=int, default=1, show_default=True, help="conversations simulated at once")
@limit_option("one simulated conversation (tasks x --per-task, in order)")
@click.option("--progress/--no-progress", default=None)
@_connection_options
@engine_options
@_command_body
def simulate_command(models: _Models, opts: dict[str, Any]) -> None:
    """Simulate users who note a reason before each message and a reaction to each answer."""
    from thoughttrace.evals import ItemStore, SimulationConfig, UserSimulator, jobs_for, simulate_many

    if opts["engine"] == "ray":
        _simulate_on_ray(models, opts)
        return
    if not opts["tasks"] and not opts["tasks_from"]:
        raise UserFacingError("give at least one --task TEXT or --tasks-from REAL.jsonl")
    if opts["turns"] < 1 or opts["per_task"] < 1:
        raise UserFacingError("--turns and --per-task must be at least 1")
    sources = _read(opts["tasks_from"]) if opts["tasks_from"] else []
    jobs = jobs_for(list(opts["tasks"]), opts["per_task"], opts["persona"], sources)
    if not jobs:
        raise UserFacingError(f"{opts['tasks_from']}: no conversation has a task summary or topic to simulate")
    jobs = first_items(jobs, opts["limit"])
    assistant = models.get(opts["model_spec"], "assistant")
    user = models.get(opts["user_spec"], "user")
    sim = UserSimulator(user, assistant, SimulationConfig(
        turns=opts["turns"], assistant_system=opts["assistant_system"], user_temperature=opts["user_temperature"],
        user_max_tokens=opts["user_max_tokens"], assistant_max_tokens=opts["assistant_max_tokens"]))
    store = ItemStore(opts["out_file"], key_field="id")
    stats = models.run(simulate_many(sim, jobs, store, sources=sources, concurrency=opts["concurrency"],
                                     progress=opts["progress"]))
    from thoughttrace.llm.ledger import calls_over_runs

    led = models.recorder.finish(models.usage())
    click.echo(f"{stats.computed} conversations simulated, {stats.skipped} already in {opts['out_file']}", err=True)
    click.echo(f"usage, all runs recorded in {models.recorder.ledger.path}: "
               f"{calls_over_runs(led['cumulative'], led['runs'])}", err=True)
    if stats.failed:
        sys.exit(1)


def _simulate_on_ray(models: _Models, opts: dict[str, Any]) -> None:
    """`simulate --tasks-from REAL --engine ray`: each shard of REAL simulated on a Ray worker.

    The shards and done markers live in OUT.batch/ (the resume source); OUT is then written from them, in
    the local engine's order (the tasks' order in REAL).
    """
    from thoughttrace.batch import write_merged
    from thoughttrace.evals.batch_job import SimulateShardJob

    if opts["tasks"] or not opts["tasks_from"]:
        raise UserFacingError("with --engine ray the tasks come from --tasks-from REAL.jsonl (sharded); simulate a "
                              "few --task texts with --engine local")
    _local_only(opts, "limit")
    if opts["turns"] < 1 or opts["per_task"] < 1:
        raise UserFacingError("--turns and --per-task must be at least 1")
    recipes = {"assistant": models.recipe(opts["model_spec"], "assistant"),
               "user": models.recipe(opts["user_spec"], "user")}
    job = SimulateShardJob(per_task=opts["per_task"], persona=opts["persona"], turns=opts["turns"],
                           assistant_system=opts["assistant_system"], user_temperature=opts["user_temperature"],
                           user_max_tokens=opts["user_max_tokens"], assistant_max_tokens=opts["assistant_max_tokens"],
                           concurrency=opts["concurrency"])
    out = Path(opts["out_file"])
    result = run_on_ray(job, opts["tasks_from"], Path(str(out) + ".batch"), recipes, ray_address=opts["ray_address"],
                        workers=opts["workers"], shard_size=opts["shard_size"], shard_format=opts["shard_format"])
    n = write_merged(Path(str(out) + ".batch"), out)
    batch_usage(result, models.roles)
    click.echo(f"{result.summary.get('computed', 0)} conversations simulated, "
               f"{result.skipped_summary.get('computed', 0)} already done ({n} in {out}; shards in {out}.batch, "
               f"{result.n_shards} shards)", err=True)
    if result.summary.get("failed"):
        sys.exit(1)
