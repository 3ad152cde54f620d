"""Judge-vs-judge agreement: re-score an eval's per-item records with a second judge and compare.

Any per-item JSONL of `thought-inference` or `next-message` works: each record carries the prediction,
the reference, the first judge's mean score and its rubric. The second judge uses the same rubric, so
disagreement measures the judges, not the instructions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .judge import Judge
from .resources import load_rubric
from .stats import agreement
from .store import ItemStore, RunStats, run_items
from .summary import finish_outputs, markdown_table, usage_fields, usage_markdown


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Judged records of an eval's items.jsonl; a clear error when the file has none."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file; pass the items.jsonl an eval wrote")
    store = ItemStore(p)
    recs = [r for r in store.records() if r.get("prediction") and r.get("reference") and isinstance(r.get("judge"), dict)]
    if not recs:
        raise ValueError(f"{p}: no judged items (records need prediction, reference and judge); "
                         "run `thoughttrace eval thought-inference|next-message ... --judge J` first")
    return recs


class Rejudge:
    """Second-judge scoring of existing records; one judge per rubric found in them."""

    def __init__(self, judge_factory: Any) -> None:
        self._factory = judge_factory
        self._judges: dict[str, Judge] = {}

    def judge_for(self, rubric: str) -> Judge:
        if rubric not in self._judges:
            load_rubric(rubric)
            self._judges[rubric] = self._factory(rubric)
        return self._judges[rubric]

    async def evaluate(self, rec: dict[str, Any]) -> dict[str, Any]:
        rubric = rec["judge"]["rubric"]
        j = await self.judge_for(rubric).ajudge(rec["prediction"], rec["reference"])
        return {"eval": "judge-agreement", "item": rec["key"], "rubric": rubric, "judge_a": rec["judge"]["judge"],
                "score_a": rec["judge"]["mean"], "judge_b": j.judge, "score_b": j.mean, "judge": j.compact(),
                "group": rec.get("condition"), "model": rec.get("model")}

    async def arun(self, records: Sequence[dict[str, Any]], store: ItemStore, *, concurrency: int = 1,
                   progress: bool | None = None) -> RunStats:
        return await run_items(list(records), lambda r: str(r["key"]), self.evaluate, store,
                               concurrency=concurrency, desc="second judge", progress=progress)


def summarise(records: list[dict[str, Any]], usage: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rows = []
    for rubric in sorted({r["rubric"] for r in records}):
        recs = [r for r in records if r["rubric"] == rubric]
        a = agreement([r["score_a"] for r in recs], [r["score_b"] for r in recs])
        rows.append({"rubric": rubric, "judge_a": recs[0]["judge_a"], "judge_b": recs[0]["judge_b"], **a.model_dump()})
    summary = {"eval": "judge-agreement", "config": config, "agreement": rows, "usage": usage}
    md = ["# Judge agreement", "", "Pearson and Spearman correlation and mean absolute difference of two judges' "
          "mean scores on the same items (items either judge failed to score are left out).", "",
          markdown_table(rows, ["rubric", "judge_a", "judge_b", "n", "pearson", "spearman", "mean_abs_diff"], 3),
          usage_markdown(usage)]
    return summary, "\n".join(md)


def write_outputs(out_dir: str | Path, store: ItemStore, usage: dict[str, Any], config: dict[str, Any],
                  run: str | None = None) -> dict[str, Any]:
    """summary.json/summary.md; `run`: the id of the RunRecorder that logged this run's calls (superseded here)."""
    fields = usage_fields(out_dir, usage, run)
    summary, md = summarise(store.records(), fields["usage"], config)
    return finish_outputs(out_dir, summary, md, fields)
