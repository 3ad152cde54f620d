"""Simulated vs real conversations, side by side: length, thought-type shares, stage curves, realism.

Realism is judged per conversation (rubric `realism`, 1-5) on both sides with the same judge, so the
judge's own leniency cancels in the comparison. Where a simulated conversation was made from a real one's
task (`simulation.source_id`), the embedding cosine between their user sides is the cheap second metric.
Simulated thoughts may carry no type labels (label them with `thoughttrace label` first); shares are then
computed over the labelled thoughts only, and the unlabelled count is reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thoughttrace.data import Conversation
from thoughttrace.data.stages import N_STAGES, message_stages, stage_names

from .embedding import EmbeddingMetric, unavailable_metrics
from .judge import Judge
from .stats import SCALES, mean_ci
from .store import ItemStore, RunStats, run_items
from .summary import finish_outputs, fmt_estimate, markdown_table, usage_fields, usage_markdown
from .transcript import ClipConfig, clip

#: the release's stages, binned by `thoughttrace.data.stages` (the same rule as `analyze`)
STAGES = tuple(stage_names(N_STAGES))


def user_side(conv: Conversation, cfg: ClipConfig | None = None, with_notes: bool = True) -> str:
    """The conversation with the user's private notes in [brackets], clipped for a judge prompt."""
    c = cfg or ClipConfig(max_message_chars=600, max_chars=5000)
    blocks = []
    for m in conv.messages:
        who = "User" if m.type == "user" else "Assistant"
        block = f"{who}: {clip(m.content, c.max_message_chars)}"
        if with_notes:
            for t in m.thoughts:
                block += f"\n[{'reason' if m.type == 'user' else 'reaction'}: {t.content}]"
        blocks.append(block)
    text = "\n\n".join(blocks)
    return clip(text, c.max_chars)


def describe(conversations: Sequence[Conversation]) -> dict[str, Any]:
    """Length, coverage, thought-type shares and stage curves of one side."""
    n_msgs = [len(c.messages) for c in conversations]
    n_user = [len(c.user_messages) for c in conversations]
    words = [len(m.content.split()) for c in conversations for m in c.user_messages]
    user_msgs = [m for c in conversations for m in c.user_messages]
    asst_msgs = [m for c in conversations for m in c.assistant_messages]
    shares: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, list[float | None]]] = {}
    for kind, side in (("reasons", "user"), ("reactions", "assistant")):
        counts: Counter[str] = Counter()
        unlabelled = 0
        stage_counts: list[Counter[str]] = [Counter() for _ in STAGES]
        for c in conversations:
            stages = message_stages(c, N_STAGES, "role")
            for i, m in enumerate(c.messages):
                if m.type != side:
                    continue
                for t in (m.reasons if kind == "reasons" else m.reactions) or []:
                    if t.label:
                        counts[t.label] += 1
                        stage_counts[stages[i]][t.label] += 1
                    else:
                        unlabelled += 1
        total = sum(counts.values())
        shares[kind] = {"labelled": total, "unlabelled": unlabelled,
                        "shares": {k: v / total for k, v in counts.most_common()} if total else {}}
        curves[kind] = {
            label: [sc[label] / sum(sc.values()) if sum(sc.values()) else None for sc in stage_counts]
            for label in counts
        }
    return {
        "conversations": len(conversations),
        # counts: intervals clipped at 0 (a t interval of skewed counts can reach below it)
        "messages_per_conversation": mean_ci(n_msgs, scale=SCALES["count"]).model_dump(),
        "user_messages_per_conversation": mean_ci(n_user, scale=SCALES["count"]).model_dump(),
        "words_per_user_message": mean_ci(words, scale=SCALES["count"]).model_dump(),
        "reason_coverage": (sum(1 for m in user_msgs if m.reasons) / len(user_msgs)) if user_msgs else None,
        "reaction_coverage": (sum(1 for m in asst_msgs if m.reactions) / len(asst_msgs)) if asst_msgs else None,
        "thought_types": shares,
        "stage_curves": curves,
    }


class SimulatorEval:
    def __init__(self, judge: Judge | None, embeddings: EmbeddingMetric | None = None) -> None:
        self.judge = judge
        self.embeddings = embeddings
        self._real: dict[str, Conversation] = {}

    async def evaluate(self, job: tuple[str, Conversation]) -> dict[str, Any]:
        side, conv = job
        record: dict[str, Any] = {"eval": "simulator", "side": side, "conversation_id": conv.id,
                                  "messages": len(conv.messages), "user_messages": len(conv.user_messages)}
        if self.judge is not None:
            j = await self.judge.ajudge(user_side(conv)) if conv.messages else None
            record["judge"] = j.compact() if j else None
            record["realism"] = j.mean if j else None
        sim_meta = getattr(conv, "simulation", None) or {}
        source = self._real.get(sim_meta.get("source_id") or "") if side == "simulated" else None
        if self.embeddings is not None and source is not None:
            a = "\n".join(m.content for m in conv.user_messages)
            b = "\n".join(m.content for m in source.user_messages)
            record["source_id"] = source.id
            record["embedding_cosine_to_source"] = await self.embeddings.acosine(a, b)
        return record

    async def arun(self, real: Sequence[Conversation], simulated: Sequence[Conversation], store: ItemStore, *,
                   concurrency: int = 1, progress: bool | None = None) -> RunStats:
        self._real = {c.id: c for c in real}
        jobs = [("real", c) for c in real] + [("simulated", c) for c in simulated]
        return await run_items(jobs, lambda j: f"{j[0]}|{j[1].id}", self.evaluate, store,
                               concurrency=concurrency, desc="simulator eval", progress=progress)


def summarise(real: Sequence[Conversation], simulated: Sequence[Conversation], records: list[dict[str, Any]],
              usage: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    sides = {"real": describe(real), "simulated": describe(simulated)}
    for side in sides:
        recs = [r for r in records if r["side"] == side]
        sides[side]["realism"] = mean_ci([r.get("realism") for r in recs], scale=SCALES["score_1_5"]).model_dump()
        sides[side]["embedding_cosine_to_source"] = mean_ci(
            [r.get("embedding_cosine_to_source") for r in recs], scale=SCALES["embedding_cosine"]).model_dump()
    end_reasons = Counter(str((getattr(c, "simulation", None) or {}).get("end_reason", "unknown")).split(" (")[0]
                          for c in simulated)
    unavailable = unavailable_metrics(config, "embedding_cosine_to_source")
    summary = {"eval": "simulator", "config": config, "sides": sides, "simulated_end_reasons": dict(end_reasons),
               "unavailable_metrics": unavailable, "usage": usage}
    r, s = sides["real"], sides["simulated"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    rows = [
        {"metric": "conversations", "real": r["conversations"], "simulated": s["conversations"]},
        {"metric": "messages / conversation", "real": fmt_estimate(r["messages_per_conversation"]),
         "simulated": fmt_estimate(s["messages_per_conversation"])},
        {"metric": "user messages / conversation", "real": fmt_estimate(r["user_messages_per_conversation"]),
         "simulated": fmt_estimate(s["user_messages_per_conversation"])},
        {"metric": "words / user message", "real": fmt_estimate(r["words_per_user_message"], 1),
         "simulated": fmt_estimate(s["words_per_user_message"], 1)},
        {"metric": "user messages with a reason", "real": pct(r["reason_coverage"]), "simulated": pct(s["reason_coverage"])},
        {"metric": "answers with a reaction", "real": pct(r["reaction_coverage"]), "simulated": pct(s["reaction_coverage"])},
        {"metric": "judged realism (1-5)", "real": fmt_estimate(r["realism"]), "simulated": fmt_estimate(s["realism"])},
        {"metric": "embedding cosine to source task's real conversation", "real": "-",
         "simulated": fmt_estimate(s["embedding_cosine_to_source"])},
    ]
    type_rows = []
    for kind in ("reasons", "reactions"):
        labels = list(dict.fromkeys(list(r["thought_types"][kind]["shares"]) + list(s["thought_types"][kind]["shares"])))
        for label in labels:
            type_rows.append({"kind": kind, "type": label,
                              "real": pct(r["thought_types"][kind]["shares"].get(label)),
                              "simulated": pct(s["thought_types"][kind]["shares"].get(label))})
        type_rows.append({"kind": kind, "type": "(unlabelled thoughts)",
                          "real": str(r["thought_types"][kind]["unlabelled"]),
                          "simulated": str(s["thought_types"][kind]["unlabelled"])})
    curve_rows = []
    for side_name, d in sides.items():
        for label, curve in d["stage_curves"]["reasons"].items():
            curve_rows.append({"side": side_name, "reason type": label,
                               **{st: pct(v) for st, v in zip(STAGES, curve)}})
    md = ["# Simulated vs real conversations", "", markdown_table(rows, ["metric", "real", "simulated"]),
          "## Thought-type shares (labelled thoughts)", "", markdown_table(type_rows, ["kind", "type", "real", "simulated"]),
          "## Reason-type stage curves (share at 0/33/67/100% of the conversation)", "",
          markdown_table(curve_rows, ["side", "reason type", *STAGES]),
          f"Simulated conversations ended by: {dict(end_reasons)}", usage_markdown(usage)]
    md += [f"Not computed: {k} ({v})." for k, v in unavailable.items()]
    return summary, "\n".join(md)


def write_outputs(out_dir: str | Path, real: Sequence[Conversation], simulated: Sequence[Conversation],
                  store: ItemStore, usage: dict[str, Any], config: dict[str, Any],
                  run: str | None = None) -> dict[str, Any]:
    """summary.json/summary.md; `run`: the id of the RunRecorder that logged this run's calls (superseded here)."""
    fields = usage_fields(out_dir, usage, run)
    summary, md = summarise(real, simulated, store.records(), fields["usage"], config)
    return finish_outputs(out_dir, summary, md, fields)
