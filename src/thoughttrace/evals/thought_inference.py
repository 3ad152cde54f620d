"""Thought inference: from the conversation so far, write the user's reason or reaction; judge it.

Items: every user message with a reason (the model sees the conversation up to and including that message)
and every assistant message with a reaction (the model sees the conversation up to and including that
answer; with `with_next_message`, a second condition adds the user's next message as evidence).

Methods:
- `direct`: one prompt asks for the thought.
- `model-based`: Bayesian inverse planning through the AutoToM engine. The model proposes one candidate
  thought per thought type of the taxonomy, written for this context; each candidate is scored by the
  likelihood of what the user did next (the message itself for a reason, the next message for a
  reaction) via `thoughttrace.tom.api.posterior_over_hypotheses`; the MAP candidate is the inference
  and its type is the predicted thought type.

The thought being inferred never enters a prompt (checked on every prompt by `check_no_leakage`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from thoughttrace.data import Conversation, load_taxonomy
from thoughttrace.llm import ConfigurationError, Model

from .embedding import EmbeddingMetric, unavailable_metrics
from .generation import generate_text
from .judge import Judge
from .leakage import check_no_leakage
from .resources import load_prompt
from .stats import SCALES, agreement
from .store import ItemStore, RunStats, first_items, run_items
from .summary import finish_outputs, group_rows, markdown_table, usage_fields, usage_markdown
from .transcript import ClipConfig, render, thought_labels, thoughts_text

Kind = Literal["reason", "reaction"]
Method = Literal["direct", "model-based"]
NO_NEXT = "(the user ended the conversation here)"


class ThoughtItem(BaseModel):
    """One thought to infer, with everything a prompt may show and the reference it must not."""

    conversation_id: str
    message_id: str
    index: int
    kind: Kind
    condition: str
    reference: str
    labels: list[str]
    visible: list[int]
    message: str | None = None
    next_message: str | None = None


def extract_items(conversations: Sequence[Conversation], with_next_message: bool = False) -> list[ThoughtItem]:
    """Every reason and reaction of the conversations, as items (reactions twice with `with_next_message`)."""
    items: list[ThoughtItem] = []
    for conv in conversations:
        for i, msg in enumerate(conv.messages):
            ref = thoughts_text(msg)
            if ref is None:
                continue
            base: dict[str, Any] = {"conversation_id": conv.id, "message_id": msg.id, "index": i, "reference": ref,
                    "labels": thought_labels(msg)}
            if msg.type == "user":
                items.append(ThoughtItem(kind="reason", condition="context", visible=list(range(i)),
                                         message=msg.content, **base))
            else:
                items.append(ThoughtItem(kind="reaction", condition="context", visible=list(range(i + 1)), **base))
                if with_next_message:
                    nxt = next((m.content for m in conv.messages[i + 1:] if m.type == "user"), None)
                    items.append(ThoughtItem(kind="reaction", condition="context+next", visible=list(range(i + 1)),
                                             next_message=nxt or NO_NEXT, **base))
    return items


def forbidden_texts(conv: Conversation, item: ThoughtItem) -> list[str]:
    """The thought being inferred (each of its notes): never in a prompt."""
    msg = conv.messages[item.index]
    return [t.content for t in msg.thoughts if t.content and t.content.strip()]


def allowed_texts(conv: Conversation, item: ThoughtItem) -> list[str]:
    """What the prompt may legitimately contain: the visible messages and the evidence.

    Taken from the conversation, not from the item, so a bug that puts a thought into an item's fields
    cannot whitelist itself.
    """
    allowed = [conv.messages[j].content for j in item.visible]
    if item.kind == "reason":
        allowed.append(conv.messages[item.index].content)
    if item.condition == "context+next":
        allowed += [m.content for m in conv.messages[item.index + 1:] if m.type == "user"][:1]
    return allowed


def direct_prompt(conv: Conversation, item: ThoughtItem, clip: ClipConfig) -> list[dict[str, str]]:
    context = render([conv.messages[j] for j in item.visible], clip)
    if item.kind == "reason":
        p = load_prompt("infer_reason")
        user = p.fill("user", context=context, message=item.message or "")
    else:
        p = load_prompt("infer_reaction")
        block = p.fill("evidence_block", next_message=item.next_message) if item.next_message else ""
        user = p.fill("user", context=context, evidence_block=block)
    return [{"role": "system", "content": p.parts["system"].strip()}, {"role": "user", "content": user.strip()}]


def proposal_prompt(conv: Conversation, item: ThoughtItem, label: str, definition: str,
                    clip: ClipConfig) -> list[dict[str, str]]:
    p = load_prompt("propose_thought")
    context = render([conv.messages[j] for j in item.visible], clip)
    focus = (p.fill("focus_reason", message=item.message or "") if item.kind == "reason"
             else p.fill("focus_reaction"))
    user = p.fill("user", context=context, focus=focus.strip(), label=label, definition=definition)
    return [{"role": "system", "content": p.parts["system"].strip()}, {"role": "user", "content": user.strip()}]


PosteriorFn = Callable[..., Awaitable[Any]]


def _default_posterior() -> PosteriorFn:
    try:
        from thoughttrace.tom.api import posterior_over_hypotheses
    except ImportError as exc:
        raise ConfigurationError(
            f"--method model-based needs the AutoToM engine (thoughttrace.tom.api): {exc}; use --method direct"
        ) from exc
    return posterior_over_hypotheses  # type: ignore[no-any-return]


def _as_list(posterior: Any, hypotheses: list[str]) -> list[float]:
    if isinstance(posterior, dict):
        return [float(posterior.get(h, 0.0)) for h in hypotheses]
    return [float(p) for p in posterior]


class ThoughtInferenceEval:
    """Runs thought inference for one model and judges it; the CLI and the benchmark drive this."""

    def __init__(
        self,
        model: Model,
        judge: Judge | None,
        *,
        method: Method = "direct",
        embeddings: EmbeddingMetric | None = None,
        judge2: Judge | None = None,
        clip: ClipConfig | None = None,
        posterior_fn: PosteriorFn | None = None,
        max_tokens: int = 96,
    ) -> None:
        self.model = model
        self.judge = judge
        self.judge2 = judge2
        self.method = method
        self.embeddings = embeddings
        self.clip = clip or ClipConfig()
        self.max_tokens = max_tokens
        self._posterior_fn = posterior_fn
        if method == "model-based" and posterior_fn is None:
            self._posterior_fn = _default_posterior()
        self._convs: dict[str, Conversation] = {}

    def key(self, item: ThoughtItem) -> str:
        return f"{self.model.spec}|{self.method}|{item.condition}|{item.conversation_id}|{item.message_id}"

    async def _direct(self, conv: Conversation, item: ThoughtItem) -> dict[str, Any]:
        prompt = direct_prompt(conv, item, self.clip)
        check_no_leakage(prompt, forbidden_texts(conv, item), allowed_texts(conv, item), where=f"{item.kind} inference")
        res = await generate_text(self.model, prompt, max_tokens=self.max_tokens)
        return {"prediction": res.text, "attempts": res.attempts, "error": res.error}

    async def _model_based(self, conv: Conversation, item: ThoughtItem) -> dict[str, Any]:
        tax = load_taxonomy()
        types = tax.reasons if item.kind == "reason" else tax.reactions
        forbidden = forbidden_texts(conv, item)
        allowed = allowed_texts(conv, item)
        candidates: list[tuple[str, str]] = []
        for t in types:
            prompt = proposal_prompt(conv, item, t.label, t.definition, self.clip)
            check_no_leakage(prompt, forbidden, allowed, where="hypothesis proposal")
            res = await generate_text(self.model, prompt, max_tokens=self.max_tokens)
            if res.text and res.text not in (c[1] for c in candidates):
                candidates.append((t.label, res.text))
        if not candidates:
            return {"prediction": "", "attempts": 1, "error": "no candidate thought could be proposed"}
        context = render([conv.messages[j] for j in item.visible], self.clip)
        if item.kind == "reason":
            evidence = f"The user then sent this message: {item.message}"
        else:
            # the next message is the observed behaviour a reaction explains (in both conditions)
            nxt = next((m.content for m in conv.messages[item.index + 1:] if m.type == "user"), None)
            evidence = f"The user's next message was: {nxt}" if nxt else NO_NEXT
            allowed = allowed + ([nxt] if nxt else [])
        check_no_leakage(context + "\n" + evidence, forbidden, allowed, where="inverse planning")
        hypotheses = [c[1] for c in candidates]
        assert self._posterior_fn is not None
        result = await self._posterior_fn(self.model, context, hypotheses, evidence, agent="the user",
                                          variable=item.kind)
        post = _as_list(result.posterior, hypotheses)
        best_i = int(getattr(result, "best", max(range(len(post)), key=lambda i: post[i])))
        tied = getattr(result, "ties", None)
        n_tied = len(tied) if isinstance(tied, list | tuple) else 1
        return {
            "prediction": hypotheses[best_i],
            "predicted_type": candidates[best_i][0],
            "type_correct": candidates[best_i][0] in item.labels,
            "candidates": [{"type": c[0], "thought": c[1], "posterior": p} for c, p in zip(candidates, post)],
            "tied_candidates": n_tied,
            "attempts": 1,
            "error": None,
        }

    async def evaluate(self, item: ThoughtItem) -> dict[str, Any]:
        conv = self._convs[item.conversation_id]
        out = await (self._direct(conv, item) if self.method == "direct" else self._model_based(conv, item))
        pred = out["prediction"]
        record: dict[str, Any] = {
            "eval": "thought-inference", "model": self.model.spec, "method": self.method,
            "kind": item.kind, "condition": item.condition, "conversation_id": item.conversation_id,
            "message_id": item.message_id, "thought_type": item.labels[0] if item.labels else "unlabelled",
            "labels": item.labels, "reference": item.reference, **out,
        }
        if self.judge is not None:
            j = await self.judge.ajudge(pred, item.reference) if pred else None
            record["judge"] = j.compact() if j else None
            record["score"] = j.mean if j else None
        if self.judge2 is not None:
            j2 = await self.judge2.ajudge(pred, item.reference) if pred else None
            record["judge2"] = j2.compact() if j2 else None
        if self.embeddings is not None:
            record["embedding_cosine"] = await self.embeddings.acosine(pred, item.reference)
        return record

    async def arun(
        self, conversations: Sequence[Conversation], store: ItemStore, *, with_next_message: bool = False,
        limit: int | None = None, concurrency: int = 1, progress: bool | None = None,
    ) -> RunStats:
        self._convs = {c.id: c for c in conversations}
        items = first_items(extract_items(conversations, with_next_message), limit)
        return await run_items(items, self.key, self.evaluate, store, concurrency=concurrency,
                               desc=f"thought inference ({self.model.spec})", progress=progress)


METRICS = {"judge": "score", "embedding": "embedding_cosine"}


def summarise(records: list[dict[str, Any]], usage: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Per model, method, kind and condition; then per thought type. Also judge-vs-judge agreement."""
    scales = {"judge": SCALES["score_1_5"], "embedding": SCALES["embedding_cosine"]}
    overall = group_rows(records, ["model", "method", "kind", "condition"], METRICS, scales=scales)
    by_type = group_rows(records, ["model", "method", "kind", "condition", "labels"], METRICS, split_list="labels",
                         scales=scales)
    for row in by_type:
        row["thought_type"] = row.pop("labels")
    type_acc = group_rows([r for r in records if "type_correct" in r], ["model", "method", "kind", "condition"],
                          {"type_accuracy": "type_correct"}, scales={"type_accuracy": SCALES["share"]})
    judge_failures = sum(1 for r in records if "judge" in r and (r["judge"] is None or r["judge"]["mean"] is None))
    summary: dict[str, Any] = {
        "eval": "thought-inference", "config": config, "n_items": len(records), "judge_failures": judge_failures,
        "generation_failures": sum(1 for r in records if not r.get("prediction")),
        "overall": overall, "unavailable_metrics": unavailable_metrics(config), "by_thought_type": by_type, "usage": usage,
        "reference": {"reasons": 2.93, "reactions": 2.54, "note": "frontier LLMs, judged 1-5 (release paper)"},
    }
    if type_acc:
        summary["type_accuracy"] = type_acc
    if any("judge2" in r for r in records):
        a = agreement([r.get("score") for r in records], [(r.get("judge2") or {}).get("mean") for r in records])
        summary["judge_agreement"] = a.model_dump()
    cols = ["model", "method", "kind", "condition", "n", "judge", "embedding"]
    md = ["# Thought inference", "", "Judged similarity to the user's own thought (1-5) and embedding cosine; "
          "mean [95% CI].", "", markdown_table(overall, cols), "## By thought type", "",
          markdown_table(by_type, ["model", "method", "kind", "condition", "thought_type", "n", "judge", "embedding"])]
    if type_acc:
        md += ["## Thought type of the MAP hypothesis (model-based)", "",
               markdown_table(type_acc, ["model", "method", "kind", "condition", "n", "type_accuracy"])]
    if "judge_agreement" in summary:
        a = summary["judge_agreement"]
        md += ["## Judge agreement", "", markdown_table([a], ["n", "pearson", "spearman", "mean_abs_diff"])]
    md += [f"Judge failures (no parseable score): {judge_failures}. Published reference (frontier LLMs): "
           "reasons 2.93, reactions 2.54.", usage_markdown(usage)]
    md += [f"Not computed: {k} ({v})." for k, v in summary["unavailable_metrics"].items()]
    return summary, "\n".join(md)


def write_outputs(out_dir: str | Path, store: ItemStore, usage: dict[str, Any], config: dict[str, Any],
                  run: str | None = None) -> dict[str, Any]:
    """summary.json/summary.md; `run`: the id of the RunRecorder that logged this run's calls (superseded here)."""
    fields = usage_fields(out_dir, usage, run)
    summary, md = summarise(store.records(), fields["usage"], config)
    return finish_outputs(out_dir, summary, md, fields)
