"""LLM labelling: batched, cached (by the model layer), resumable, never guessing.

Two methods:
- `generate` (any backend): the prompt lists the allowed labels with definitions and examples; the answer
  is parsed strictly (`parse.parse_label`). With `constrained=True` (default) the request also carries a
  JSON schema whose `label` is an enum of the allowed labels, so backends with constrained decoding
  (llama.cpp, vLLM, OpenAI structured outputs) can only produce a valid answer. An invalid answer is fed back with the error and retried up to
  `max_attempts` times in all; then the item is recorded as `unlabelled` with the last raw output.
- `logprobs` (backends with `next_token_logprobs`: llama.cpp, vLLM, OpenAI): the options are numbered and
  the probability of each option number as the first answer token is read. Tiny models favour early
  positions, so each item is asked in two orders (as listed and reversed) and the two normalised
  distributions are averaged. If the model puts less than `min_mass` on the option numbers in either order
  the item is `unlabelled` (no guess).

Results are appended to the output JSONL after every batch; a restart skips items already in the file
(`retry_unlabelled=True` retries the unlabelled ones), and repeated calls are served by the model cache.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from thoughttrace.llm import Model
from thoughttrace.llm.errors import ParseError
from thoughttrace.llm.window import ordered_window

from .items import LabelItem
from .labelsets import LabelSet, get_label_set
from .parse import parse_label
from .prompts import build_messages, retry_messages

LABELS_FORMAT_VERSION = 1
Method = Literal["generate", "logprobs"]


class LabelFileError(ValueError):
    """The output file cannot be resumed (made by another model or method, or not a labels file)."""


@dataclass
class LabelResult:
    item: LabelItem
    label: str | None
    attempts: int
    raw: str | None = None
    error: str | None = None
    probs: dict[str, float] | None = None

    @property
    def status(self) -> str:
        return "ok" if self.label else "unlabelled"

    def record(self, model: str, method: str) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "format_version": LABELS_FORMAT_VERSION, "item_id": self.item.item_id, "kind": self.item.kind,
            "conversation_id": self.item.conversation_id, "message_id": self.item.message_id,
            "index": self.item.index, "label": self.label, "status": self.status, "gold": self.item.gold,
            "model": model, "method": method, "attempts": self.attempts,
        }
        if self.error:
            rec["error"] = self.error
        if self.raw is not None:
            rec["raw"] = self.raw[:500]
        if self.probs is not None:
            rec["probs"] = {k: round(v, 6) for k, v in self.probs.items()}
        return rec


@dataclass
class LabelRunSummary:
    total: int = 0
    skipped: int = 0
    labelled: int = 0
    unlabelled: int = 0
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.total, "skipped_done": self.skipped, "labelled": self.labelled,
                "unlabelled": self.unlabelled,
                "by_kind": {k: dict(v) for k, v in self.by_kind.items()}}


class Labeler:
    """Labels `LabelItem`s with one model and one method."""

    def __init__(self, model: Model, *, method: Method = "generate", max_attempts: int = 3,
                 max_tokens: int = 48, min_mass: float = 0.05, constrained: bool = True) -> None:
        if method not in ("generate", "logprobs"):
            raise ValueError(f"unknown labelling method {method!r}; use 'generate' or 'logprobs'")
        if method == "logprobs":
            model.require("next_token_logprobs")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.model = model
        self.method = method
        self.max_attempts = max_attempts
        self.max_tokens = max_tokens
        self.min_mass = min_mass
        self.constrained = constrained

    async def alabel(self, item: LabelItem) -> LabelResult:
        ls = get_label_set(item.kind)
        if self.method == "logprobs":
            return await self._by_logprobs(item, ls)
        return await self._by_generation(item, ls)

    async def _by_generation(self, item: LabelItem, ls: LabelSet) -> LabelResult:
        messages = build_messages(item, ls)
        schema = label_schema(ls.names) if self.constrained else None
        raw, error = "", ""
        for attempt in range(1, self.max_attempts + 1):
            gen = await self.model.agenerate(messages, temperature=0.0, max_tokens=self.max_tokens, json_schema=schema)
            raw = gen.text
            try:
                return LabelResult(item, parse_label(raw, ls.names), attempt, raw=raw)
            except ParseError as exc:
                error = str(exc).split(" (raw output:")[0]
                messages = retry_messages(messages, raw, error, ls.names)
        return LabelResult(item, None, self.max_attempts, raw=raw, error=f"no valid label after "
                           f"{self.max_attempts} attempts: {error}")

    async def _by_logprobs(self, item: LabelItem, ls: LabelSet) -> LabelResult:
        orders = [ls.names, ls.names[::-1]]
        total = dict.fromkeys(ls.names, 0.0)
        for order in orders:
            msgs = build_messages(item, ls, order=order, numbered=True)
            res = await self.model.anext_token_logprobs(msgs, k=20, max_tokens=1)
            probs = {lab: res.prob_of(str(i)) for i, lab in enumerate(order, start=1)}
            mass = sum(probs.values())
            if mass < self.min_mass:
                top = ", ".join(f"{t.token!r}:{math.exp(t.logprob):.2f}" for t in res.top[:5])
                return LabelResult(item, None, len(orders), error=f"only {mass:.3f} probability on the option "
                                   f"numbers (top tokens {top}); not guessing")
            for lab, p in probs.items():
                total[lab] += p / mass / len(orders)
        best = max(total, key=lambda k: total[k])
        return LabelResult(item, best, len(orders), probs=total)

    def label_file(
        self,
        items: Iterable[LabelItem],
        out: str | Path,
        *,
        batch_size: int = 16,
        retry_unlabelled: bool = False,
        limit: int | None = None,
        progress: bool = False,
        on_batch: Callable[[list[LabelResult]], None] | None = None,
    ) -> LabelRunSummary:
        """Label items into `out` (JSONL, appended batch by batch; resumes from what is there)."""
        out = Path(out)
        done = read_done(out, self.model.spec, self.method, retry_unlabelled)
        summary = LabelRunSummary()
        todo: list[LabelItem] = []
        for item in items:
            if limit is not None and summary.total >= limit:
                break
            summary.total += 1
            if item.item_id in done:
                summary.skipped += 1
            else:
                todo.append(item)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=f"label ({self.model.spec})", unit=" item")
        out.parent.mkdir(parents=True, exist_ok=True)
        _end_with_newline(out)
        with open(out, "a", encoding="utf-8") as fh:
            # a sliding window of `batch_size` calls (thoughttrace.llm.window): a batch would wait for its slowest
            self.model.run(self._label_into(fh, todo, batch_size, summary, bar, on_batch))
        if bar is not None:
            bar.close()
        return summary


    async def _label_into(self, fh: Any, todo: list[LabelItem], window: int, summary: LabelRunSummary, bar: Any,
                          on_batch: Callable[[list[LabelResult]], None] | None) -> None:
        """Label `todo` with `window` calls in flight, writing each record in input order as it is ready."""
        chunk: list[LabelResult] = []
        async for r in ordered_window(self.alabel, todo, window):
            fh.write(json.dumps(r.record(self.model.spec, self.method), ensure_ascii=False) + "\n")
            summary.by_kind.setdefault(r.item.kind, Counter())[r.label or "(unlabelled)"] += 1
            if r.label:
                summary.labelled += 1
            else:
                summary.unlabelled += 1
            if bar is not None:
                bar.update(1)
            chunk.append(r)
            if len(chunk) >= window:
                fh.flush()
                if on_batch is not None:
                    on_batch(chunk)
                chunk = []
        fh.flush()
        if chunk and on_batch is not None:
            on_batch(chunk)


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    """JSON schema of a valid answer: {"label": one of the allowed labels}."""
    return {"type": "object", "properties": {"label": {"type": "string", "enum": list(labels)}},
            "required": ["label"], "additionalProperties": False}


def _end_with_newline(path: Path) -> None:
    """After an interrupted run the last line may be cut; keep appended records on lines of their own."""
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as fh:
            fh.seek(-1, 2)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


async def _gather(coros: Sequence[Any]) -> list[LabelResult]:
    return list(await asyncio.gather(*coros))


def read_done(path: Path, model: str, method: str, retry_unlabelled: bool = False) -> set[str]:
    """Item ids already in a labels file; refuses a file made by another model or method."""
    done: set[str] = set()
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if line_no > 1 or not line.endswith("\n"):
                    continue  # a line cut by an interrupted run: its item is simply redone
                raise LabelFileError(f"{path}: line {line_no} is not JSON; is this a labels file?") from None
            if not isinstance(rec, dict) or "item_id" not in rec:
                raise LabelFileError(f"{path}: line {line_no} is not a label record; pick another --out")
            if rec.get("model") != model or rec.get("method") != method:
                raise LabelFileError(
                    f"{path} holds labels from model '{rec.get('model')}' ({rec.get('method')}); this run uses "
                    f"'{model}' ({method}). Use another --out file to keep both, or delete it to start over."
                )
            if rec.get("status") == "ok" or not retry_unlabelled:
                done.add(rec["item_id"])
    return done


def labels_file_summary(path: str | Path) -> dict[str, Any]:
    """Counts over a whole labels file (the last record of each item): items, labelled, unlabelled, by kind."""
    records = read_label_records(path) if Path(path).exists() else []
    by_kind: dict[str, Counter[str]] = {}
    labelled = 0
    for rec in records:
        ok = rec.get("status") == "ok"
        labelled += ok
        by_kind.setdefault(str(rec.get("kind")), Counter())[str(rec.get("label")) if ok else "(unlabelled)"] += 1
    return {"items": len(records), "labelled": labelled, "unlabelled": len(records) - labelled,
            "by_kind": {k: dict(v) for k, v in by_kind.items()}}


def read_label_records(path: str | Path) -> list[dict[str, Any]]:
    """All records of a labels file; for an item labelled more than once the last record wins."""
    last: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "item_id" in rec:
                prev = last.get(rec["item_id"])
                if prev is None or rec.get("status") == "ok" or prev.get("status") != "ok":
                    last[rec["item_id"]] = rec
    return list(last.values())
