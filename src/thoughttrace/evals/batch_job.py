"""Evals and simulation as shard jobs for the batch engine (`--engine ray` of `eval ...` and `simulate`).

A shard's conversations are evaluated exactly as the local engine evaluates them (the same eval classes,
prompts, judges and records); the shard's records come back in item order, model by model. The summary
statistics (bootstrap CIs, gains, judge agreement) are NOT computed per shard: the driver merges every
shard's records into `items.jsonl` (`thoughttrace.batch.write_merged`) and runs the eval's own `write_outputs` once over
all of them, so both engines write the same summary from the same records. Within a shard, records are in
item order (the local engine's order at --concurrency 1), model by model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from thoughttrace.data import Conversation
from thoughttrace.llm import Model

from .embedding import load_metric
from .judge import Judge
from .next_message import NextMessageEval, normalise_conditions
from .next_message import extract_items as nm_items
from .simulator import SimulationConfig, UserSimulator, jobs_for, simulate_many
from .store import MemoryItemStore, RunStats
from .thought_inference import ThoughtInferenceEval
from .thought_inference import extract_items as ti_items
from .transcript import ClipConfig

EvalName = Literal["thought-inference", "next-message"]
#: role names in the recipes mapping: the evaluated models are `model:0`, `model:1`, ...
JUDGE, JUDGE2 = "judge", "judge2"


def model_role(i: int) -> str:
    return f"model:{i}"


@dataclass(frozen=True)
class JudgeSettings:
    """How the judges are asked (the CLI's --judge-* options)."""

    samples: int = 1
    temperature: float | None = None
    swap: bool = True
    max_retries: int = 2
    max_tokens: int = 128

    def judge(self, model: Model, rubric: str) -> Judge:
        return Judge(model, rubric, samples=self.samples, temperature=self.temperature, swap=self.swap,
                     max_retries=self.max_retries, max_tokens=self.max_tokens)


@dataclass(frozen=True)
class EvalShardJob:
    """One eval (thought inference or next-message prediction) over a shard, for every evaluated model."""

    eval: EvalName
    n_models: int
    judged: bool
    judged2: bool
    judge_settings: JudgeSettings = field(default_factory=JudgeSettings)
    embeddings: bool = False
    clip: tuple[int, int] = (6000, 1200)  # max_chars, max_message_chars
    max_tokens: int | None = None
    concurrency: int = 1
    # thought inference
    method: str = "direct"
    with_next_message: bool = False
    # next-message prediction
    conditions: tuple[str, ...] = ("history",)
    infer_method: str = "direct"
    name: str = "eval"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": f"{self.name}:{self.eval}", "models": model_spec, "method": self.method,
                "with_next_message": self.with_next_message, "conditions": list(self.conditions),
                "infer_method": self.infer_method, "judge": [self.judged, self.judged2],
                "judge_settings": self.judge_settings.__dict__, "embeddings": self.embeddings,
                "clip": list(self.clip), "max_tokens": self.max_tokens}

    def run_shard(self, conversations: Iterable[Conversation], model: Any) -> tuple[list[dict[str, Any]],
                                                                                      dict[str, Any]]:
        models: dict[str, Model] = model
        convs = list(conversations)
        rubric = "thought_similarity" if self.eval == "thought-inference" else "message_similarity"
        judge = self.judge_settings.judge(models[JUDGE], rubric) if self.judged else None
        judge2 = self.judge_settings.judge(models[JUDGE2], rubric) if self.judged2 else None
        emb = load_metric(enabled=self.embeddings)  # loaded once per worker process (get_embedder shares it)
        clip = ClipConfig(max_chars=self.clip[0], max_message_chars=self.clip[1])
        records: list[dict[str, Any]] = []
        summary: dict[str, Any] = {"conversations": len(convs), "items": 0, "computed": 0, "failed": 0}
        first = next(iter(models.values()))
        for i in range(self.n_models):
            evaluated = models[model_role(i)]
            store = MemoryItemStore()
            stats: RunStats
            if self.eval == "thought-inference":
                ti = ThoughtInferenceEval(evaluated, judge, method=self.method, embeddings=emb,  # type: ignore[arg-type]
                                          judge2=judge2, clip=clip, max_tokens=self.max_tokens or 96)
                stats = first.run(ti.arun(convs, store, with_next_message=self.with_next_message,
                                          concurrency=self.concurrency, progress=False))
                keys = [ti.key(it) for it in ti_items(convs, self.with_next_message)]
            else:
                nm = NextMessageEval(evaluated, judge, embeddings=emb, judge2=judge2, clip=clip,
                                     max_tokens=self.max_tokens or 160, infer_method=self.infer_method)  # type: ignore[arg-type]
                stats = first.run(nm.arun(convs, store, list(self.conditions), concurrency=self.concurrency,
                                          progress=False))
                keys = [nm.key(it) for it in nm_items(convs, normalise_conditions(self.conditions))]
            # appended in completion order (concurrency above 1): put them back in item order
            order = {k: n for n, k in enumerate(keys)}
            records += sorted(store.records(), key=lambda r: order[str(r["key"])])
            summary["items"] += stats.total
            summary["computed"] += stats.computed
            summary["failed"] += stats.failed
            if stats.errors:
                summary.setdefault("first_errors", stats.errors[:5])
        return records, summary


@dataclass(frozen=True)
class SimulateShardJob:
    """User simulation for the tasks of a shard's real conversations (`simulate --tasks-from`)."""

    per_task: int = 1
    persona: str | None = None
    turns: int = 4
    assistant_system: str | None = None
    user_temperature: float = 0.8
    user_max_tokens: int = 200
    assistant_max_tokens: int = 400
    concurrency: int = 1
    name: str = "simulate"

    def fingerprint(self, model_spec: str) -> dict[str, Any]:
        return {"job": self.name, "models": model_spec, "per_task": self.per_task, "persona": self.persona,
                "turns": self.turns, "assistant_system": self.assistant_system,
                "user_temperature": self.user_temperature, "user_max_tokens": self.user_max_tokens,
                "assistant_max_tokens": self.assistant_max_tokens}

    def run_shard(self, conversations: Iterable[Conversation], model: Any) -> tuple[list[dict[str, Any]],
                                                                                      dict[str, Any]]:
        models: dict[str, Model] = model
        sources = list(conversations)
        jobs = jobs_for([], self.per_task, self.persona, sources)
        sim = UserSimulator(models["user"], models["assistant"], SimulationConfig(
            turns=self.turns, assistant_system=self.assistant_system, user_temperature=self.user_temperature,
            user_max_tokens=self.user_max_tokens, assistant_max_tokens=self.assistant_max_tokens))
        store = MemoryItemStore(key_field="id")
        stats = models["user"].run(simulate_many(sim, jobs, store, sources=sources, concurrency=self.concurrency,
                                                 progress=False))
        order = {j.conversation_id: n for n, j in enumerate(jobs)}
        records = sorted(store.records(), key=lambda r: order[str(r["id"])])
        return records, {"sources": len(sources), "jobs": stats.total, "computed": stats.computed,
                         "failed": stats.failed}
