"""Batch jobs over shards, on Ray Data (`engine="ray"`) or in this process (`engine="inline"`).

The job (labelling, simulation ...) is a small picklable object from its own part (`label`, `evals`, ...)
that turns the conversations of one shard into output records with our model layer (cache, endpoint pool,
retries). This module only plans shards, hands them to workers and keeps the books:

- output: `OUT/shards/part-NNNNN.{jsonl,parquet}`, each written by the worker that made it (tmp + rename);
- resume: `OUT/shards/part-NNNNN.done.json`, written after its shard, is the finished-shard manifest: a rerun
  skips those shards and makes no model call for them, wherever the response cache lives;
- summary: `OUT/manifest.json` (counts and usage summed over shards) for the caller's summary file;
- driver memory: the driver holds shard numbers and one shard's small summary at a time, never rows.

Why our model layer inside `map_batches` and not `ray.data.llm`: the HTTP-request processor sends one fixed
payload per row to one URL; our jobs parse and re-ask on a bad answer, read the response cache, fail over
inside an endpoint pool and report usage per endpoint. The `ray[llm]` extra also pulls GPU vLLM and CUDA
packages (see docs/scale.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from thoughttrace.data import DatasetError
from thoughttrace.llm import LLMError, Model, RetriesExhaustedError, TransientError, UsageReport, get_model
from thoughttrace.llm.ledger import LEDGER_FORMAT_VERSION, UsageLedger
from thoughttrace.llm.pool import split_limits

from .sources import ShardPlan, check_same_input, plan_shards, read_shard

BATCH_FORMAT_VERSION = 1
ENGINES = ("local", "ray")
SHARD_FORMATS = ("jsonl", "parquet")
#: environment variables forwarded to Ray workers (model settings and keys live in the environment)
_FORWARD_PREFIXES = ("THOUGHTTRACE_", "OPENAI_", "HF_", "TRANSFORMERS_")


class BatchError(ValueError):
    """A batch run cannot start or resume; the message says how to fix it."""


class ShardJob(Protocol):
    """What a part gives the engine: a picklable job that turns one shard's rows into records.

    `model` is the one Model of a single `ModelRecipe`, or, when the run was given a mapping of roles to
    recipes (an eval's model and judges, a simulation's user and assistant), a dict role -> Model (roles
    with the same recipe share one Model). A job whose input is not conversations (ToM items) also has
    `read_rows(plan, k, skip_invalid)`; otherwise the engine reads the shard's conversations.
    """

    name: str

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        """Settings that must match for a rerun to reuse finished shards (model, method, kinds ...)."""

    def run_shard(self, conversations: Iterable[Any], model: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Records of this shard, in input order, and a summary of numeric counts (summed over shards).

        The summary's `failed` (`FAILED`) counts records whose model calls failed: a rerun redoes that shard.
        """


@dataclass(frozen=True)
class ModelRecipe:
    """How each worker builds its own Model (a Model holds sockets and threads: it is never pickled)."""

    spec: str
    #: URL(s) or fleet YAML path as given, or (after `for_workers`) the resolved endpoint list each worker uses
    base_url: str | list[dict[str, Any]] | None = None
    #: a cache file path, "default" (THOUGHTTRACE_CACHE or the home cache of the machine the worker runs on),
    #: or None (no cache)
    cache: str | None = "default"
    offline: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Model:
        kwargs = dict(self.kwargs)
        if self.base_url:
            kwargs["base_url"] = self.base_url
        cache: Any = True if self.cache == "default" else (self.cache or False)
        return get_model(self.spec, cache=cache, offline=self.offline, **kwargs)

    def for_workers(self, workers: int) -> ModelRecipe:
        """This recipe as each of `workers` processes must build it: endpoints resolved HERE, limits shared.

        The fleet YAML is read on the driver (a relative path means the driver's working directory, not a
        Ray worker's), the THOUGHTTRACE_BASE_URL of the driver counts, and each endpoint's `max_connections`
        (the server's total) is divided among the workers, so the cluster never exceeds it.
        """
        base = self.base_url
        if base is None and self.spec.startswith("openai-compatible/"):
            base = os.environ.get("THOUGHTTRACE_BASE_URL") or None
        if not base:
            return self
        try:
            shared = split_limits(base, workers, default_max_connections=int(self.kwargs.get("max_connections", 8)))
        except LLMError as exc:
            raise BatchError(str(exc)) from exc
        return dataclasses.replace(self, base_url=shared)

    def key_variables(self) -> list[str]:
        """Environment variables that endpoints name with `api_key_env` (forwarded to Ray workers)."""
        if not isinstance(self.base_url, list):
            return []
        return [str(e["api_key_env"]) for e in self.base_url if isinstance(e, dict) and e.get("api_key_env")]


#: one recipe (a job with one model), or role -> recipe (a job with several: model, judge, user ...)
Recipes = ModelRecipe | Mapping[str, ModelRecipe]


def recipes_spec(recipe: Recipes) -> str:
    """The model string(s) a run's fingerprint records: `spec`, or `role=spec,...` for several roles."""
    if isinstance(recipe, ModelRecipe):
        return recipe.spec
    return ",".join(f"{role}={r.spec}" for role, r in recipe.items())


def recipes_for_workers(recipe: Recipes, workers: int) -> Recipes:
    """`ModelRecipe.for_workers` over one recipe or a mapping role -> recipe."""
    if isinstance(recipe, ModelRecipe):
        return recipe.for_workers(workers)
    return {role: r.for_workers(workers) for role, r in recipe.items()}


def _recipe_list(recipe: Recipes) -> list[ModelRecipe]:
    return [recipe] if isinstance(recipe, ModelRecipe) else list(recipe.values())


def build_models(recipe: Recipes) -> Any:
    """The Model of one recipe, or role -> Model (equal recipes give one shared Model: weights load once)."""
    if isinstance(recipe, ModelRecipe):
        return recipe.build()
    built: list[tuple[ModelRecipe, Model]] = []
    out: dict[str, Model] = {}
    for role, r in recipe.items():
        same = next((m for r2, m in built if r2 == r), None)
        if same is None:
            same = r.build()
            built.append((r, same))
        out[role] = same
    return out


def distinct_models(models: Any) -> list[Model]:
    """Each Model once, whether `models` is one Model or a dict role -> Model."""
    if not isinstance(models, dict):
        return [models]
    seen: dict[int, Model] = {}
    for m in models.values():
        seen.setdefault(id(m), m)
    return list(seen.values())


@dataclass
class BatchResult:
    out: Path
    n_shards: int
    done_before: int
    summary: dict[str, Any]
    #: this run's usage over every model (a rerun of finished shards: zero calls)
    usage: UsageReport
    skipped_summary: dict[str, Any]
    #: this run's usage per model string
    usage_by_model: dict[str, UsageReport] = field(default_factory=dict)
    #: per model string, every run into this output so far (killed workers and failed shards included)
    cumulative: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: shard attempts the cumulative figures sum
    ledger_runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "n_shards": self.n_shards, "shards_done_before": self.done_before,
                "summary": self.summary, "skipped_summary": self.skipped_summary, "usage": self.usage.model_dump(),
                "usage_by_model": {k: v.model_dump() for k, v in self.usage_by_model.items()},
                "usage_cumulative": self.cumulative, "usage_ledger_runs": self.ledger_runs}


# -- book-keeping on disk --------------------------------------------------------------------------
def shard_path(out: Path, k: int, fmt: str) -> Path:
    return out / "shards" / f"part-{k:05d}.{fmt}"


def marker_path(out: Path, k: int) -> Path:
    return out / "shards" / f"part-{k:05d}.done.json"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _prepare(out: Path, input_path: str | Path, shard_rows: int, fingerprint: dict[str, Any],
             shard_format: str) -> dict[str, Any]:
    """Cut the input (first run) or check that a rerun matches the run that made `out`."""
    plan_file = out / "plan.json"
    if plan_file.exists():
        saved = json.loads(plan_file.read_text("utf-8"))
        if saved.get("job") != fingerprint or saved.get("shard_format") != shard_format:
            raise BatchError(
                f"{out} was made by another run ({saved.get('job')}, {saved.get('shard_format')} shards); this run "
                f"is {fingerprint}, {shard_format} shards. Use another --out, or delete it to start over.")
        if Path(saved["plan"]["input"]) != Path(input_path).resolve():
            raise BatchError(f"{out} holds shards of {saved['plan']['input']}, not {input_path}; use another --out")
        check_same_input(saved["plan"], input_path)
        return dict(saved["plan"])
    if out.exists() and any(out.iterdir()):
        raise BatchError(f"{out} exists and is not a batch output directory (no plan.json); pick another --out")
    plan: ShardPlan = plan_shards(input_path, shard_rows)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    _write_atomic(plan_file, json.dumps({"format_version": BATCH_FORMAT_VERSION, "job": fingerprint,
                                         "shard_format": shard_format, "plan": plan.as_dict()}, indent=2).encode())
    return plan.as_dict()


#: the usage ledger of a batch output: every model call of every worker, appended as it happens
USAGE_LEDGER = "usage.jsonl"


class ShardLedger:
    """A worker's side of `OUT/usage.jsonl`: each call appended when it happens, each shard's usage at its end.

    Why: usage summed from done markers loses what a killed worker (or a failed shard) spent; the servers saw
    those requests. Each shard attempt is one ledger "run": its call lines count until its summary line (with
    `by_endpoint`) supersedes them (llm/ledger.py), so a killed worker's calls are counted from its call lines.
    Each request is written when it is sent too (`by_endpoint` lines), so the requests a killed worker had in
    flight, which the server saw but no call recorded, are counted as well.

    The file stays open for the shard attempt and each line is written with one `write` as it happens: a
    SIGKILLed process loses nothing the kernel has (no fsync: a killed worker, not a lost machine, is the
    case this covers), and a call costs one system call instead of an open, a write and a close.
    """

    def __init__(self, out: Path) -> None:
        self.ledger = UsageLedger(out / USAGE_LEDGER)
        self.run: str | None = None
        self._lock = threading.Lock()
        self._attached: set[int] = set()
        self._fh: Any = None

    def attach(self, models: list[Model]) -> None:
        for m in models:
            if id(m.usage) in self._attached:
                continue
            self._attached.add(id(m.usage))
            m.usage.add_listener(self._listener(m.spec))
            m.usage.add_endpoint_listener(self._endpoint_listener(m.spec))

    def _listener(self, spec: str) -> Callable[[str, dict[str, float]], None]:
        def on_event(_model_id: str, increments: dict[str, float]) -> None:
            self._event(spec, increments)

        return on_event

    def _endpoint_listener(self, spec: str) -> Callable[[str, dict[str, float]], None]:
        def on_endpoint(url: str, increments: dict[str, float]) -> None:
            self._event(spec, {"by_endpoint": {url: increments}})  # type: ignore[dict-item]

        return on_endpoint

    def _event(self, spec: str, increments: dict[str, Any]) -> None:
        run = self.run
        if run is None:
            return
        line = json.dumps({"format_version": LEDGER_FORMAT_VERSION, "run": run, "spec": spec, "event": increments})
        with self._lock:
            fh = self._fh
            if fh is None:  # between shards (a late event of a call that outlived its shard)
                return
            fh.write(line + "\n")
            fh.flush()

    def start(self, k: int) -> None:
        self.ledger.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._fh is None:
                self._fh = open(self.ledger.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by finish()
            self.run = f"shard-{k}-{uuid.uuid4().hex[:12]}"

    def finish(self, by_model: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            run, self.run = self.run, None
            fh, self._fh = self._fh, None
            if fh is not None:
                fh.close()
            if run is not None:
                self.ledger.append(by_model, run=run)


def usage_by_model(models: list[Model]) -> dict[str, dict[str, Any]]:
    """Each distinct Model's usage report, summed per model string."""
    by_model: dict[str, dict[str, Any]] = {}
    for m in models:
        rep = m.usage.report().model_dump()
        by_model[m.spec] = add_counts(by_model[m.spec], rep) if m.spec in by_model else rep
    return by_model


def cumulative_usage(out: str | Path) -> tuple[dict[str, dict[str, Any]], int]:
    """Per model string, the usage of every shard attempt of every run into `out` (killed ones too); and how
    many ledger runs (shard attempts) that is."""
    ledger = UsageLedger(Path(out) / USAGE_LEDGER)
    return ledger.total(), len(ledger.runs())


#: the shard-summary count of records that failed (a model error, not a wrong answer): a shard with any is
#: run again by the next run, as the local engines retry their failed items; its good records come from the cache
FAILED = "failed"


def finished_shards(out: Path, n_shards: int) -> dict[int, dict[str, Any]]:
    """Shard number -> its done marker, for every shard finished without failed records (the resume source)."""
    done: dict[int, dict[str, Any]] = {}
    for k in range(n_shards):
        m = marker_path(out, k)
        if m.exists():
            marker = json.loads(m.read_text("utf-8"))
            if not marker["summary"].get(FAILED):
                done[k] = marker
    return done


def write_records(path: Path, records: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "jsonl":
        _write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    table = pa.Table.from_pylist(records) if records else pa.table({})
    table = table.replace_schema_metadata({"thoughttrace_batch_format_version": str(BATCH_FORMAT_VERSION)})
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def iter_records(out: str | Path) -> Iterator[dict[str, Any]]:
    """Every record of a batch output, shard by shard in input order (streamed; nothing is held)."""
    out = Path(out)
    plan_file = out / "plan.json"
    if not plan_file.exists():
        raise BatchError(f"{out}: not a batch output directory (no plan.json)")
    saved = json.loads(plan_file.read_text("utf-8"))
    fmt = saved["shard_format"]
    for k in range(int(saved["plan"]["n_shards"])):
        p = shard_path(out, k, fmt)
        if not marker_path(out, k).exists():
            continue
        if fmt == "jsonl":
            with open(p, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)
        else:
            import pyarrow.parquet as pq

            for rec in pq.read_table(p).to_pylist():
                yield {k2: v for k2, v in rec.items() if v is not None}


def write_merged(out: str | Path, dest: str | Path, *, group_by: str | None = None) -> int:
    """Stream every record of a batch output into one JSONL file `dest` (tmp + rename); returns the count.

    This is the local engine's output file for jobs that write one (items.jsonl, a simulation, rewrites).
    With `group_by`, records are written group by group, in the order each group first appears (an eval's
    records model by model, as the local engine writes them); the shards are then read once per group, so
    memory stays one record whatever the size.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    groups: list[Any] = [None]
    if group_by is not None:
        groups = list(dict.fromkeys(rec.get(group_by) for rec in iter_records(out)))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for g in groups:
            for rec in iter_records(out):
                if group_by is None or rec.get(group_by) == g:
                    fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                    n += 1
    os.replace(tmp, dest)
    return n


# -- one shard, on whichever worker ---------------------------------------------------------------
def process_shard(job: ShardJob, model: Any, plan: dict[str, Any], k: int, out: Path, fmt: str,
                  skip_invalid: bool, shard_retries: int = 2, ledger: ShardLedger | None = None) -> dict[str, Any]:
    """Run one shard and write its records, then its done marker; a shard already done is not redone.

    A shard whose model calls keep failing transiently (every endpoint of the pool out, retries spent) is
    tried again after a pause, up to `shard_retries` times: what it had finished comes from the cache.
    """
    marker = marker_path(out, k)
    if marker.exists():  # a retried task whose first attempt finished after all
        return dict(json.loads(marker.read_text("utf-8")))
    models = distinct_models(model)
    for m in models:
        m.usage.reset()
    if ledger is not None:
        ledger.attach(models)
        ledger.start(k)
    started = time.perf_counter()
    attempt = 0
    reader = getattr(job, "read_rows", None) or read_shard
    try:
        while True:
            attempt += 1
            try:
                records, summary = job.run_shard(reader(plan, k, skip_invalid=skip_invalid), model)
                break
            except (RetriesExhaustedError, TransientError):
                if attempt > shard_retries:
                    raise
                time.sleep(5.0 * attempt)
        write_records(shard_path(out, k, fmt), records, fmt)
    finally:  # what the attempt spent, finished or not, goes to the ledger
        by_model = usage_by_model(models)
        if ledger is not None:
            ledger.finish(by_model)
    total = sum_usage(by_model.values(), 0.0).model_dump()
    done = {"format_version": BATCH_FORMAT_VERSION, "shard": k, "records": len(records), "summary": summary,
            "usage": total, "usage_by_model": by_model, "seconds": round(time.perf_counter() - started, 3),
            "attempts": attempt, "host": os.uname().nodename, "pid": os.getpid()}
    _write_atomic(marker, json.dumps(done, ensure_ascii=False).encode("utf-8"))
    return done


class _ShardWorker:
    """The Ray Data actor: builds its Model on its first shard, then runs the shards it is handed.

    An error is not raised through Ray (which prints `UserCodeException: UDF failed ...` and a traceback)
    but returned as the one line the local engine prints; the driver raises it as a `WorkerError`.
    """

    def __init__(self, job: ShardJob, recipe: Recipes, plan: dict[str, Any], out: str, fmt: str,
                 skip_invalid: bool, shard_retries: int = 2) -> None:
        self.job, self.plan, self.out, self.fmt, self.skip_invalid = job, plan, Path(out), fmt, skip_invalid
        self.recipe, self.shard_retries = recipe, shard_retries
        self.model: Any = None
        self.ledger = ShardLedger(self.out)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        shards = [int(k) for k in batch["shard"]]
        done: list[str] = []
        for k in shards:
            try:
                if self.model is None:
                    self.model = build_models(self.recipe)
                done.append(json.dumps(process_shard(self.job, self.model, self.plan, k, self.out, self.fmt,
                                                     self.skip_invalid, self.shard_retries, ledger=self.ledger)))
            except Exception as exc:  # noqa: BLE001 - every error becomes its one line for the driver
                done.append(json.dumps({"shard": k, "error": error_line(exc)}))
        return {"shard": shards, "done": done}


class WorkerError(BatchError):
    """A shard failed on a Ray worker; the message is the line the local engine prints for the same error."""


def error_line(exc: BaseException) -> str:
    """The one line `thoughttrace` prints for an error (the CLI's `friendly_errors`, on any engine)."""
    known: tuple[type[BaseException], ...] = (DatasetError, LLMError)
    try:
        from pydantic import ValidationError

        known = (*known, ValidationError)
    except ImportError:  # pragma: no cover - pydantic is a dependency
        pass
    if isinstance(exc, BatchError):
        return str(exc)
    if isinstance(exc, known):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror} (check the path, its permissions and the free space)"
    if isinstance(exc, ValueError):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


# -- sums ------------------------------------------------------------------------------------------
def add_counts(acc: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Add nested numeric counts into `acc` (labels per kind, calls per endpoint ...)."""
    for key, value in more.items():
        if isinstance(value, dict):
            add_counts(acc.setdefault(key, {}), value)
        elif isinstance(value, bool):
            acc[key] = value
        elif isinstance(value, (int, float)):
            acc[key] = acc.get(key, 0) + value
        elif value is not None:
            acc.setdefault(key, value)
    return acc


def sum_usage(reports: Iterable[dict[str, Any]], wall_seconds: float) -> UsageReport:
    acc: dict[str, Any] = {}
    cost: float | None = None
    for rep in reports:
        if rep.get("cost_usd") is not None:
            cost = (cost or 0.0) + float(rep["cost_usd"])
        add_counts(acc, {k: v for k, v in rep.items() if k not in {"cost_usd", "wall_seconds", "format_version"}})
    for row in acc.get("by_endpoint", {}).values():
        row.pop("up", None)
    return UsageReport(**acc, wall_seconds=wall_seconds, cost_usd=cost)


# -- the driver ------------------------------------------------------------------------------------
def run_batch(
    job: ShardJob,
    input_path: str | Path,
    out: str | Path,
    recipe: Recipes,
    *,
    engine: str = "ray",
    ray_address: str | None = None,
    workers: int = 2,
    cpus_per_worker: float = 1.0,
    shard_rows: int = 1000,
    shard_format: str = "jsonl",
    skip_invalid: bool = False,
    progress: bool = False,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    shard_retries: int = 2,
) -> BatchResult:
    """Run `job` over every unfinished shard of `input_path` into the directory `out`; resumable.

    `shard_retries`: how often a shard whose model calls keep failing transiently is tried again (after 5 s,
    10 s ...) before the run stops with the error.
    """
    if shard_format not in SHARD_FORMATS:
        raise BatchError(f"unknown shard format {shard_format!r}; choose {' or '.join(SHARD_FORMATS)}")
    if workers < 1:
        raise BatchError("--workers must be at least 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BatchError(f"{out} is a file; with --engine ray, --out names a directory of shards")
    started = time.perf_counter()
    plan = _prepare(out, input_path, shard_rows, job.fingerprint(recipes_spec(recipe)), shard_format)
    if engine == "ray":
        recipe = recipes_for_workers(recipe, workers)
    n = int(plan["n_shards"])
    before = finished_shards(out, n)
    todo = [k for k in range(n) if k not in before]
    for k in todo:  # a shard with failed records is redone: its marker goes first, so a crash leaves it to do
        marker_path(out, k).unlink(missing_ok=True)
    summary: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    usages: list[dict[str, Any]] = []
    usages_by_model: dict[str, list[dict[str, Any]]] = {}
    for d in before.values():
        add_counts(skipped, d["summary"])
    bar = _bar(progress, len(todo), f"{job.name} shards")
    for done in _execute(job, recipe, plan, out, shard_format, skip_invalid, todo, engine, ray_address, workers,
                         cpus_per_worker, shard_retries):
        add_counts(summary, done["summary"])
        usages.append(done["usage"])
        for spec, rep in (done.get("usage_by_model") or {}).items():
            usages_by_model.setdefault(spec, []).append(rep)
        if on_shard is not None:
            on_shard(done)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - started
    usage = sum_usage(usages, wall)
    specs = [recipe.spec] if isinstance(recipe, ModelRecipe) else [r.spec for r in recipe.values()]
    by_model = {spec: sum_usage(usages_by_model.get(spec, []), wall) for spec in dict.fromkeys(specs)}
    missing = [k for k in range(n) if not marker_path(out, k).exists()]
    if missing:
        raise BatchError(f"{len(missing)} shard(s) did not finish (first: {missing[0]}); rerun the same command "
                         "to finish them")
    cumulative, ledger_runs = cumulative_usage(out)
    result = BatchResult(out, n, len(before), summary, usage, skipped, by_model, cumulative, ledger_runs)
    _write_atomic(out / "manifest.json", json.dumps({"format_version": BATCH_FORMAT_VERSION, "engine": engine,
                                                     "job": job.fingerprint(recipes_spec(recipe)),
                                                     **result.as_dict()},
                                                    indent=2, default=str).encode())
    return result


def _bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=" shard")


def _execute(job: ShardJob, recipe: Recipes, plan: dict[str, Any], out: Path, fmt: str, skip_invalid: bool,
             todo: list[int], engine: str, ray_address: str | None, workers: int,
             cpus_per_worker: float, shard_retries: int = 2) -> Iterator[dict[str, Any]]:
    if not todo:
        return
    if engine == "local":
        model = build_models(recipe)
        ledger = ShardLedger(out)
        try:
            for k in todo:
                yield process_shard(job, model, plan, k, out, fmt, skip_invalid, shard_retries, ledger=ledger)
        finally:
            for m in distinct_models(model):
                m.close()
        return
    if engine != "ray":
        raise BatchError(f"unknown engine {engine!r}; choose {' or '.join(ENGINES)}")
    keys = sorted({v for r in _recipe_list(recipe) for v in r.key_variables()})
    ray, data = _ray(ray_address, workers, cpus_per_worker, keys)
    ds = data.from_items([{"shard": k} for k in todo], override_num_blocks=min(len(todo), max(workers * 4, 1)))
    with warnings.catch_warnings():  # Ray 2.60 calls max_restarts "ray_remote_args", deprecated; still honoured
        warnings.simplefilter("ignore")
        ds = _map_shards(ds, data, job, recipe, plan, out, fmt, skip_invalid, workers, cpus_per_worker,
                         shard_retries)
    for row in ds.iter_rows():
        done = json.loads(row["done"])
        if "error" in done:
            raise WorkerError(done["error"])
        yield done


def _map_shards(ds: Any, data: Any, job: ShardJob, recipe: Recipes, plan: dict[str, Any], out: Path, fmt: str,
                skip_invalid: bool, workers: int, cpus_per_worker: float, shard_retries: int = 2) -> Any:
    return ds.map_batches(
        _ShardWorker,
        fn_constructor_kwargs={"job": job, "recipe": recipe, "plan": plan, "out": str(out.resolve()), "fmt": fmt,
                               "skip_invalid": skip_invalid, "shard_retries": shard_retries},
        # one shard per actor at a time: with Ray's default queue of tasks per actor, a worker that started
        # first took two shards while the other, still starting, got none (2,000 items ran in twice the time)
        batch_size=1, compute=data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=cpus_per_worker,
        # a worker that dies is restarted and its shard re-run (done markers keep that idempotent)
        max_restarts=2, max_task_retries=2,
    )


def _ray(address: str | None, workers: int, cpus_per_worker: float,
         key_variables: list[str] | None = None) -> tuple[Any, Any]:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise BatchError("--engine ray needs Ray Data: `pip install 'thoughttrace[scale]'`") from exc
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_PREFIXES) or k in (key_variables or [])}
        if os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                                  "runtime_env": {"env_vars": env}}
        if address:
            kwargs["address"] = address
        elif not os.environ.get("RAY_ADDRESS"):  # Ray's own variable names a cluster: ray.init joins it
            # a new local Ray, as documented, even where `ray start` runs one on this machine (ray.init() would
            # join that one and refuse num_cpus)
            kwargs["address"] = "local"
            kwargs["num_cpus"] = max(1, int(round(workers * cpus_per_worker)))
        # Ray Data hands every actor its transformer as an object-store reference, and with restarts on
        # (ours: a killed worker is restarted) the driver's C++ core worker logs an ERROR line about it on
        # every run. Its other C++ errors surface as Python exceptions; set RAY_BACKEND_LOG_LEVEL to see them.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or os.environ.get("RAY_ADDRESS") or "(a new local one)"
            raise BatchError(f"could not reach the Ray cluster at {where}: {exc}; start "
                             "it with `ray start --head` or check --ray-address") from exc
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(sys.stderr.isatty())
    ctx.execution_options.preserve_order = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray, ray.data


def worker_error(exc: BaseException) -> str:
    """A one-line message for an error raised inside Ray (a worker's own errors arrive as `WorkerError`).

    What is left is Ray's own failure: a worker process died more often than it is restarted (killed,
    out of memory), or the cluster went away. Say that, and the fix, instead of Ray's exception text.
    """
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or getattr(cur, "cause", None) or cur.__context__
    ours = [e for e in seen if type(e).__module__.startswith("thoughttrace")]
    if ours:
        return error_line(ours[-1])
    names = ", ".join(dict.fromkeys(type(e).__name__ for e in seen))
    return (f"a Ray worker died or the cluster stopped answering before every shard was done ({names}); the "
            "finished shards are kept: rerun the same command to do the rest; if it happens again, check the "
            "nodes' memory (`ray status`) and the worker logs (/tmp/ray/session_latest/logs)")
