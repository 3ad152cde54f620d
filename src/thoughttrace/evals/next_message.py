"""Next-message prediction: write the user's next message under a condition; judge it against the real one.

Conditions (what the prompt shows beyond the conversation before the target message):
- `history`: nothing more.
- `reaction` (alias `thoughts`): the user's private reaction to the last answer, which exists before the
  next message is written.
- `reaction+reason`: also the reason behind the target message. That reason is written with the message
  and leaks its intent, so this condition is an UPPER BOUND and is reported separately.

The target message never enters a prediction prompt, and its reason never enters a `history` or
`reaction` prompt: `check_no_leakage` runs on every prompt before it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from thoughttrace.data import Conversation
from thoughttrace.llm import Model

from .embedding import EmbeddingMetric, unavailable_metrics
from .generation import generate_text
from .judge import Judge
from .leakage import check_no_leakage
from .resources import load_prompt
from .stats import agreement, paired_relative_gain
from .store import ItemStore, RunStats, run_items
from .summary import group_rows, markdown_table, usage_markdown, write_summary
from .transcript import ClipConfig, render, thoughts_text

CONDITIONS = ("history", "reaction", "reaction+reason")
ALIASES = {"thoughts": "reaction"}
UPPER_BOUND = "reaction+reason"


def normalise_conditions(conditions: Sequence[str]) -> list[str]:
    """Resolve aliases, drop duplicates, reject unknown names with the list of valid ones."""
    out: list[str] = []
    for c in conditions or ["history"]:
        name = ALIASES.get(c, c)
        if name not in CONDITIONS:
            raise ValueError(f"unknown condition '{c}'; choose from {', '.join(CONDITIONS)} (or 'thoughts' = reaction)")
        if name not in out:
            out.append(name)
    return out


class NextMessageItem(BaseModel):
    conversation_id: str
    message_id: str
    index: int
    condition: str
    reference: str
    reason: str | None = None
    reaction: str | None = None


def extract_items(conversations: Sequence[Conversation], conditions: Sequence[str]) -> list[NextMessageItem]:
    """Every user message after an assistant answer, once per condition whose thoughts it has."""
    items = []
    for conv in conversations:
        for i, msg in enumerate(conv.messages):
            if msg.type != "user" or i == 0 or conv.messages[i - 1].type != "assistant" or not msg.content.strip():
                continue
            reaction = thoughts_text(conv.messages[i - 1])
            reason = thoughts_text(msg)
            for cond in conditions:
                if cond in ("reaction", UPPER_BOUND) and reaction is None:
                    continue
                if cond == UPPER_BOUND and reason is None:
                    continue
                items.append(NextMessageItem(
                    conversation_id=conv.id, message_id=msg.id, index=i, condition=cond, reference=msg.content,
                    reaction=reaction if cond != "history" else None,
                    reason=reason if cond == UPPER_BOUND else None,
                ))
    return items


def build_prompt(conv: Conversation, item: NextMessageItem, clip: ClipConfig) -> list[dict[str, str]]:
    """The prediction prompt for one item, checked for leakage before it is returned."""
    p = load_prompt("next_message")
    visible = conv.messages[: item.index]
    blocks = ""
    if item.condition in ("reaction", UPPER_BOUND) and item.reaction:
        blocks += p.fill("reaction_block", reaction=item.reaction)
    if item.condition == UPPER_BOUND and item.reason:
        blocks += p.fill("reason_block", reason=item.reason)
    user = p.fill("user", context=render(visible, clip), thought_blocks=blocks)
    prompt = [{"role": "system", "content": p.parts["system"].strip()}, {"role": "user", "content": user.strip()}]
    target = conv.messages[item.index]
    forbidden = [target.content]
    if item.condition != UPPER_BOUND:
        forbidden += [t.content for t in target.thoughts if t.content.strip()]
    # what this condition may show, taken from the conversation itself (never from the item being checked)
    allowed = [m.content for m in visible]
    if item.condition != "history":
        allowed += [t.content for t in conv.messages[item.index - 1].thoughts]
    if item.condition == UPPER_BOUND:
        allowed += [t.content for t in target.thoughts]
    check_no_leakage(prompt, forbidden, allowed, where=f"next-message ({item.condition})")
    return prompt


class NextMessageEval:
    def __init__(
        self, model: Model, judge: Judge | None, *, embeddings: EmbeddingMetric | None = None,
        judge2: Judge | None = None, clip: ClipConfig | None = None, max_tokens: int = 160,
    ) -> None:
        self.model = model
        self.judge = judge
        self.judge2 = judge2
        self.embeddings = embeddings
        self.clip = clip or ClipConfig()
        self.max_tokens = max_tokens
        self._convs: dict[str, Conversation] = {}

    def key(self, item: NextMessageItem) -> str:
        return f"{self.model.spec}|{item.condition}|{item.conversation_id}|{item.message_id}"

    async def evaluate(self, item: NextMessageItem) -> dict[str, Any]:
        conv = self._convs[item.conversation_id]
        prompt = build_prompt(conv, item, self.clip)
        res = await generate_text(self.model, prompt, max_tokens=self.max_tokens, first_paragraph=False)
        record: dict[str, Any] = {
            "eval": "next-message", "model": self.model.spec, "condition": item.condition,
            "upper_bound": item.condition == UPPER_BOUND, "conversation_id": item.conversation_id,
            "message_id": item.message_id, "reference": item.reference, "prediction": res.text,
            "attempts": res.attempts, "error": res.error,
        }
        if self.judge is not None:
            j = await self.judge.ajudge(res.text, item.reference) if res.text else None
            record["judge"] = j.compact() if j else None
            record["score"] = j.mean if j else None
        if self.judge2 is not None:
            j2 = await self.judge2.ajudge(res.text, item.reference) if res.text else None
            record["judge2"] = j2.compact() if j2 else None
        if self.embeddings is not None:
            record["embedding_cosine"] = await self.embeddings.acosine(res.text, item.reference)
        return record

    async def arun(
        self, conversations: Sequence[Conversation], store: ItemStore, conditions: Sequence[str], *,
        limit: int | None = None, concurrency: int = 1, progress: bool | None = None,
    ) -> RunStats:
        """`limit` counts target messages (each with all its conditions), so conditions stay paired."""
        self._convs = {c.id: c for c in conversations}
        items = extract_items(conversations, normalise_conditions(conditions))
        if limit is not None:
            targets = list(dict.fromkeys((i.conversation_id, i.message_id) for i in items))[:limit]
            keep = set(targets)
            items = [i for i in items if (i.conversation_id, i.message_id) in keep]
        return await run_items(items, self.key, self.evaluate, store, concurrency=concurrency,
                               desc=f"next message ({self.model.spec})", progress=progress)


def gains(records: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per model, each condition against `history` on the same target messages: relative gain with a CI."""
    rows = []
    models = sorted({r["model"] for r in records})
    for model in models:
        by_cond: dict[str, dict[tuple[str, str], float]] = {}
        for r in records:
            if r["model"] == model and r.get(metric) is not None:
                by_cond.setdefault(r["condition"], {})[(r["conversation_id"], r["message_id"])] = float(r[metric])
        base = by_cond.get("history", {})
        for cond in CONDITIONS[1:]:
            treated = by_cond.get(cond, {})
            common = sorted(set(base) & set(treated))
            if not common:
                continue
            est = paired_relative_gain([base[k] for k in common], [treated[k] for k in common])
            rows.append({"model": model, "condition": cond, "vs": "history", "metric": metric, "n": len(common),
                         "relative_gain": est.model_dump(), "upper_bound": cond == UPPER_BOUND})
    return rows


METRICS = {"judge": "score", "embedding": "embedding_cosine"}


def summarise(records: list[dict[str, Any]], usage: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    overall = group_rows(records, ["model", "condition"], METRICS)
    for row in overall:
        row["upper_bound"] = row["condition"] == UPPER_BOUND
    gain_rows = gains(records, "score") + gains(records, "embedding_cosine")
    judge_failures = sum(1 for r in records if "judge" in r and (r["judge"] is None or r["judge"]["mean"] is None))
    summary: dict[str, Any] = {
        "eval": "next-message", "config": config, "n_items": len(records), "judge_failures": judge_failures,
        "overall": overall, "unavailable_metrics": unavailable_metrics(config), "gains": gain_rows, "usage": usage,
        "reference": {"history": 21.6, "thought_augmented": 30.6, "note": "judged 0-100 (release paper)"},
    }
    if any("judge2" in r for r in records):
        summary["judge_agreement"] = agreement(
            [r.get("score") for r in records], [(r.get("judge2") or {}).get("mean") for r in records]
        ).model_dump()
    for row in overall:
        if row["upper_bound"]:
            row["condition"] = f"{row['condition']} (upper bound: leaks intent)"
    md = ["# Next-message prediction", "",
          "Judged similarity to the real next message (0-100) and embedding cosine; mean [95% CI]. "
          "`reaction+reason` shows the reason behind the target message, which leaks its intent: an upper bound.",
          "", markdown_table(overall, ["model", "condition", "n", "judge", "embedding"], digits=2),
          "## Relative gain over `history` (same messages; paired bootstrap 95% CI)", "",
          markdown_table(gain_rows, ["model", "condition", "metric", "n", "relative_gain", "upper_bound"], digits=3)]
    if "judge_agreement" in summary:
        md += ["## Judge agreement", "",
               markdown_table([summary["judge_agreement"]], ["n", "pearson", "spearman", "mean_abs_diff"])]
    md += [f"Judge failures (no parseable score): {judge_failures}. Published reference: history 21.6, "
           "thought-augmented 30.6.", usage_markdown(usage)]
    md += [f"Not computed: {k} ({v})." for k, v in summary["unavailable_metrics"].items()]
    return summary, "\n".join(md)


def write_outputs(out_dir: str | Path, store: ItemStore, usage: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    summary, md = summarise(store.records(), usage, config)
    write_summary(out_dir, summary, md)
    return summary
