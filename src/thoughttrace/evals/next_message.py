"""Next-message prediction: write the user's next message under a condition; judge it against the real one.

Conditions (what the prompt shows beyond the conversation before the target message):
- `history`: nothing more.
- `reaction` (alias `thoughts`): the user's private reaction to the last answer, which exists before the
  next message is written.
- `reaction+reason`: also the reason behind the target message. That reason is written with the message
  and leaks its intent, so this condition is an UPPER BOUND and is reported separately.
- `inferred`: the model first infers the reaction and the reason from the history only
  (`evals.inferred`, direct or model-based), then predicts from history + its inferred notes, shown in
  the same blocks as the oracle conditions. Its gain over `history` is reported as a share of each
  oracle condition's gain (`reaction`, `reaction+reason`) on the same messages.

Every comparison is an absolute difference on the same target messages with a paired bootstrap CI; a
relative gain is added only for the 0-100 judge score (a ratio scale), never for the cosine.

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
from .inferred import InferMethod, InferredThoughts, PosteriorFn, ThoughtInferrer
from .judge import Judge
from .leakage import check_no_leakage
from .resources import load_prompt
from .stats import SCALES, agreement, paired_difference, paired_relative_gain, share_of_gain
from .store import ItemStore, RunStats, first_items, run_items
from .summary import finish_outputs, group_rows, markdown_table, usage_fields, usage_markdown
from .transcript import ClipConfig, render, thoughts_text

CONDITIONS = ("history", "reaction", "reaction+reason", "inferred")
ALIASES = {"thoughts": "reaction"}
UPPER_BOUND = "reaction+reason"
INFERRED = "inferred"
#: conditions that show the user's own notes; `inferred` is reported as a share of their gain
ORACLES = ("reaction", UPPER_BOUND)


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
                    reaction=reaction if cond in ORACLES else None,
                    reason=reason if cond == UPPER_BOUND else None,
                ))
    return items


def build_prompt(conv: Conversation, item: NextMessageItem, clip: ClipConfig,
                 inferred: InferredThoughts | None = None) -> list[dict[str, str]]:
    """The prediction prompt for one item, checked for leakage before it is returned.

    For the `inferred` condition, `inferred` holds step 1's notes; they fill the same blocks the oracle
    conditions fill with the user's own notes, so only the source of the thought differs.
    """
    p = load_prompt("next_message")
    visible = conv.messages[: item.index]
    reaction: str | None
    reason: str | None
    if item.condition == INFERRED:
        if inferred is None:
            raise ValueError("the inferred condition needs the inferred thoughts (ThoughtInferrer.infer)")
        reaction, reason = inferred.reaction, inferred.reason
    else:
        reaction = item.reaction if item.condition in ORACLES else None
        reason = item.reason if item.condition == UPPER_BOUND else None
    blocks = ""
    if reaction:
        blocks += p.fill("reaction_block", reaction=reaction)
    if reason:
        blocks += p.fill("reason_block", reason=reason)
    user = p.fill("user", context=render(visible, clip), thought_blocks=blocks)
    prompt = [{"role": "system", "content": p.parts["system"].strip()}, {"role": "user", "content": user.strip()}]
    target = conv.messages[item.index]
    forbidden = [target.content]
    if item.condition != UPPER_BOUND:
        forbidden += [t.content for t in target.thoughts if t.content.strip()]
    if item.condition == INFERRED:
        # the inferred condition never sees a real note: every thought and everything from t on is forbidden
        forbidden = [m.content for m in conv.messages[item.index:] if m.content.strip()]
        forbidden += [t.content for m in conv.messages for t in m.thoughts if t.content.strip()]
    # what this condition may show, taken from the conversation itself (never from the item being checked)
    allowed = [m.content for m in visible]
    if item.condition in ORACLES:
        allowed += [t.content for t in conv.messages[item.index - 1].thoughts]
    if item.condition == UPPER_BOUND:
        allowed += [t.content for t in target.thoughts]
    if item.condition == INFERRED and inferred is not None:
        allowed += [inferred.reaction, inferred.reason]  # model output from the history (guarded in step 1)
    check_no_leakage(prompt, forbidden, allowed, where=f"next-message ({item.condition})")
    return prompt


class NextMessageEval:
    def __init__(
        self, model: Model, judge: Judge | None, *, embeddings: EmbeddingMetric | None = None,
        judge2: Judge | None = None, clip: ClipConfig | None = None, max_tokens: int = 160,
        infer_method: InferMethod = "direct", posterior_fn: PosteriorFn | None = None,
    ) -> None:
        self.model = model
        self.infer_method = infer_method
        self._posterior_fn = posterior_fn
        self._inferrer: ThoughtInferrer | None = None
        self.judge = judge
        self.judge2 = judge2
        self.embeddings = embeddings
        self.clip = clip or ClipConfig()
        self.max_tokens = max_tokens
        self._convs: dict[str, Conversation] = {}

    def key(self, item: NextMessageItem) -> str:
        cond = f"{item.condition}:{self.infer_method}" if item.condition == INFERRED else item.condition
        return f"{self.model.spec}|{cond}|{item.conversation_id}|{item.message_id}"

    def inferrer(self) -> ThoughtInferrer:
        if self._inferrer is None:
            self._inferrer = ThoughtInferrer(self.model, self.infer_method, clip=self.clip,
                                             posterior_fn=self._posterior_fn)
        return self._inferrer

    async def evaluate(self, item: NextMessageItem) -> dict[str, Any]:
        conv = self._convs[item.conversation_id]
        inferred = await self.inferrer().infer(conv, item.index) if item.condition == INFERRED else None
        prompt = build_prompt(conv, item, self.clip, inferred)
        res = await generate_text(self.model, prompt, max_tokens=self.max_tokens, first_paragraph=False)
        record: dict[str, Any] = {
            "eval": "next-message", "model": self.model.spec, "condition": item.condition,
            "upper_bound": item.condition == UPPER_BOUND, "conversation_id": item.conversation_id,
            "message_id": item.message_id, "reference": item.reference, "prediction": res.text,
            "attempts": res.attempts, "error": res.error,
        }
        if inferred is not None:
            record["inferred"] = inferred.model_dump()
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
        """`limit` counts items (one target message under one condition), as `--help` says. Items come in
        file order with each message's conditions next to each other, so the first N items pair up: with 4
        conditions, `limit=8` is 2 messages under all 4 (only a last, cut message may miss some)."""
        self._convs = {c.id: c for c in conversations}
        items = first_items(extract_items(conversations, normalise_conditions(conditions)), limit)
        return await run_items(items, self.key, self.evaluate, store, concurrency=concurrency,
                               desc=f"next message ({self.model.spec})", progress=progress)


#: record field -> its scale (one definition: evals.stats.SCALES)
METRIC_SCALES = {"score": SCALES["score_0_100"], "embedding_cosine": SCALES["embedding_cosine"]}


def condition_label(record: dict[str, Any]) -> str:
    """The row label of a record; an `inferred` one names its method, since direct and model-based inferences
    of the same messages may share a folder (their item keys differ) and must not be averaged together."""
    if record["condition"] != INFERRED:
        return str(record["condition"])
    method = (record.get("inferred") or {}).get("method") or "direct"
    return f"{INFERRED} ({method})"


def _labelled(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "condition": condition_label(r)} for r in records]


def _inferred_labels(by_cond: dict[str, Any]) -> list[str]:
    return sorted(c for c in by_cond if c.startswith(INFERRED))


def _by_condition(records: list[dict[str, Any]], model: str, metric: str) -> dict[str, dict[tuple[str, str], float]]:
    by_cond: dict[str, dict[tuple[str, str], float]] = {}
    for r in records:
        if r["model"] == model and r.get(metric) is not None:
            by_cond.setdefault(r["condition"], {})[(r["conversation_id"], r["message_id"])] = float(r[metric])
    return by_cond


def gains(records: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per model, each condition against `history` on the same target messages.

    `difference`: mean(condition - history) with a paired bootstrap CI inside the range of a difference of
    the metric. `relative_gain`: only when the metric is on a ratio scale (else null, with the reason).
    """
    scale = METRIC_SCALES[metric]
    records = _labelled(records)
    rows = []
    for model in sorted({r["model"] for r in records}):
        by_cond = _by_condition(records, model, metric)
        base = by_cond.get("history", {})
        for cond in [*ORACLES, *_inferred_labels(by_cond)]:
            treated = by_cond.get(cond, {})
            common = sorted(set(base) & set(treated))
            if not common:
                continue
            b, t = [base[k] for k in common], [treated[k] for k in common]
            row: dict[str, Any] = {
                "model": model, "condition": cond, "vs": "history", "metric": metric, "n": len(common),
                "history_mean": sum(b) / len(b), "condition_mean": sum(t) / len(t),
                "difference": paired_difference(b, t, scale=scale).model_dump(),
                "upper_bound": cond == UPPER_BOUND,
            }
            if scale.ratio:
                row["relative_gain"] = paired_relative_gain(b, t, scale=scale).model_dump()
                row["relative_gain_note"] = f"ratio scale ({scale.name})"
            else:
                row["relative_gain"] = None
                row["relative_gain_note"] = f"not reported: {scale.name} is not a ratio scale"
            rows.append(row)
    return rows


def oracle_shares(records: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per model and oracle condition: the share of the oracle's gain over `history` that `inferred` recovers."""
    scale = METRIC_SCALES[metric]
    records = _labelled(records)
    rows = []
    for model in sorted({r["model"] for r in records}):
        by_cond = _by_condition(records, model, metric)
        base = by_cond.get("history", {})
        for label, oracle in [(lab, o) for lab in _inferred_labels(by_cond) for o in ORACLES]:
            inf, orc = by_cond[label], by_cond.get(oracle, {})
            common = sorted(set(base) & set(inf) & set(orc))
            if not common or not base or not inf:
                continue
            est = share_of_gain([base[k] for k in common], [inf[k] for k in common], [orc[k] for k in common],
                                scale=scale)
            rows.append({"model": model, "inferred": label, "oracle": oracle, "metric": metric, "n": len(common),
                         "oracle_gain": paired_difference([base[k] for k in common], [orc[k] for k in common],
                                                          scale=scale).model_dump(),
                         "inferred_gain": paired_difference([base[k] for k in common], [inf[k] for k in common],
                                                            scale=scale).model_dump(),
                         "share_of_oracle_gain": est.model_dump(), "reason": est.reason})
    return rows


METRICS = {"judge": "score", "embedding": "embedding_cosine"}


def summarise(records: list[dict[str, Any]], usage: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    overall = group_rows(_labelled(records), ["model", "condition"], METRICS,
                         scales={"judge": METRIC_SCALES["score"], "embedding": METRIC_SCALES["embedding_cosine"]})
    for row in overall:
        row["upper_bound"] = row["condition"] == UPPER_BOUND
    gain_rows = gains(records, "score") + gains(records, "embedding_cosine")
    share_rows = oracle_shares(records, "score") + oracle_shares(records, "embedding_cosine")
    judge_failures = sum(1 for r in records if "judge" in r and (r["judge"] is None or r["judge"]["mean"] is None))
    summary: dict[str, Any] = {
        "eval": "next-message", "config": config, "n_items": len(records), "judge_failures": judge_failures,
        "overall": overall, "unavailable_metrics": unavailable_metrics(config), "gains": gain_rows,
        "oracle_share": share_rows, "usage": usage,
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
          "## Difference from `history` (same messages; condition - history, paired bootstrap 95% CI)", "",
          "`relative_gain` only for the 0-100 judge score (a ratio scale); a cosine has no meaningful ratio.", "",
          markdown_table(gain_rows, ["model", "condition", "metric", "n", "history_mean", "condition_mean",
                                     "difference", "relative_gain", "upper_bound"], digits=3)]
    withheld = [f"- {r['model']} / {r['condition']} ({r['metric']}): {r['relative_gain']['reason']}"
                for r in gain_rows if r.get("relative_gain") and r["relative_gain"].get("mean") is None
                and r["relative_gain"].get("reason")]
    if withheld:
        md += ["Relative gain withheld:", "", *withheld, ""]
    if share_rows:
        md += ["## Share of the oracle's gain recovered by inferred thoughts", "",
               "(inferred - history) / (oracle - history) on the messages all three conditions scored; "
               "null with its reason when the oracle gain is ~0.", "",
               markdown_table(share_rows, ["model", "inferred", "oracle", "metric", "n", "oracle_gain", "inferred_gain",
                                           "share_of_oracle_gain", "reason"], digits=3)]
    if "judge_agreement" in summary:
        md += ["## Judge agreement", "",
               markdown_table([summary["judge_agreement"]], ["n", "pearson", "spearman", "mean_abs_diff"])]
    md += [f"Judge failures (no parseable score): {judge_failures}. Published reference: history 21.6, "
           "thought-augmented 30.6.", usage_markdown(usage)]
    md += [f"Not computed: {k} ({v})." for k, v in summary["unavailable_metrics"].items()]
    return summary, "\n".join(md)


def write_outputs(out_dir: str | Path, store: ItemStore, usage: dict[str, Any], config: dict[str, Any],
                  run: str | None = None) -> dict[str, Any]:
    """summary.json/summary.md; `run`: the id of the RunRecorder that logged this run's calls (superseded here)."""
    fields = usage_fields(out_dir, usage, run)
    summary, md = summarise(store.records(), fields["usage"], config)
    return finish_outputs(out_dir, summary, md, fields)
