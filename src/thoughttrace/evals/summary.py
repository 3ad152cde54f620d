"""Summaries of per-item records: grouped means with 95% CIs, written as JSON and a Markdown table."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .stats import SMALL_N, Estimate, Scale, mean_ci
from .store import FORMAT_VERSION


def get_path(record: dict[str, Any], dotted: str) -> Any:
    """`judge.mean` -> record['judge']['mean'] (None when any part is missing)."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def group_rows(
    records: Iterable[dict[str, Any]], by: Sequence[str], metrics: dict[str, str], split_list: str | None = None,
    scales: dict[str, Scale] | None = None,
) -> list[dict[str, Any]]:
    """One row per combination of the `by` fields: n and, per metric, a mean with its CI.

    `metrics` maps a column name to a dotted path in the records. `split_list` names a list field (e.g. a
    message's thought labels): a record then counts once in each group of its distinct values.
    `scales` (by metric column) keeps each interval inside its metric's range.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for rec in records:
        if split_list is not None:
            values = list(dict.fromkeys(rec.get(split_list) or ["unlabelled"]))
            for v in values:
                key = tuple(v if f == split_list else get_path(rec, f) for f in by)
                groups.setdefault(key, []).append(rec)
        else:
            groups.setdefault(tuple(get_path(rec, f) for f in by), []).append(rec)
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        recs = groups[key]
        row: dict[str, Any] = dict(zip(by, key))
        row["n"] = len(recs)
        for name, path in metrics.items():
            row[name] = mean_ci([get_path(r, path) for r in recs], scale=(scales or {}).get(name)).model_dump()
        rows.append(row)
    return rows


#: the note under a table that holds a small estimate (what the mark means)
SMALL_NOTE = f"_small_: from fewer than {SMALL_N} items; its interval is wide and its mean unsteady."


def fmt_estimate(est: dict[str, Any] | Estimate | None, digits: int = 2) -> str:
    """`mean [low, high]`, and `(small, n=3)` when the estimate rests on fewer than SMALL_N items."""
    if est is None:
        return "-"
    e = est.model_dump() if isinstance(est, Estimate) else est
    if e.get("mean") is None:
        return "-"
    text = f"{e['mean']:.{digits}f}"
    if e.get("low") is not None and e.get("high") is not None:
        text += f" [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"
    if e.get("small"):
        items = e.get("items")
        text += f" (small, n={e.get('n')}" + (f", {items} items" if items is not None else "") + ")"
    return text


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 2) -> str:
    """A Markdown table; estimate cells print as `mean [low, high]`."""
    if not rows:
        return "_no items_\n"
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    any_small = False
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c)
            if isinstance(v, dict) and "mean" in v:
                any_small = any_small or bool(v.get("small") and v.get("mean") is not None)
                cells.append(fmt_estimate(v, digits))
            elif isinstance(v, float):
                cells.append(f"{v:.{digits}f}")
            else:
                cells.append("-" if v is None else str(v).replace("|", "/"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n" + (f"\n{SMALL_NOTE}\n" if any_small else "")


def cumulative_usage(out_dir: str | Path, usage: dict[str, Any],
                     run: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record this run's usage in OUT/usage.jsonl; return (cumulative usage of every run, this run's usage).

    A resumed run calls the model only for the missing items, so its own usage would hide the study's
    cost; summaries report the cumulative figures and keep this run's beside them. `run` is the id of the
    `RunRecorder` that appended this run's calls as they happened: its summary line supersedes them.
    """
    from thoughttrace.llm.ledger import UsageLedger

    ledger = UsageLedger(Path(out_dir) / "usage.jsonl")
    ledger.append(usage, run=run)
    return ledger.total(), usage


def usage_fields(out_dir: str | Path, usage: dict[str, Any], run: str | None = None) -> dict[str, Any]:
    """Record this run's usage; return the summary's usage fields, "N calls over K runs" included.

    `usage` (cumulative over every run into OUT, killed ones counted from their call lines),
    `usage_this_run`, `usage_runs` (K) and `usage_summary` (the sentence a reader quotes).
    """
    from thoughttrace.llm.ledger import UsageLedger, calls_over_runs

    cumulative, this_run = cumulative_usage(out_dir, usage, run=run)
    runs = len(UsageLedger(Path(out_dir) / "usage.jsonl").runs())
    return {"usage": cumulative, "usage_this_run": this_run, "usage_runs": runs,
            "usage_summary": calls_over_runs(cumulative, runs)}


def finish_outputs(out_dir: str | Path, summary: dict[str, Any], markdown: str,
                   usage: dict[str, Any]) -> dict[str, Any]:
    """Put the usage fields (from `usage_fields`) in the summary, the totals line in the Markdown; write both."""
    summary.update(usage)
    markdown += (f"\nUsage, every run into this folder (killed runs counted from their call lines): "
                 f"{usage['usage_summary']}.\n")
    write_summary(out_dir, summary, markdown)
    return summary


def write_summary(out_dir: str | Path, summary: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """summary.json (with format_version and a timestamp) and summary.md in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "created": _dt.datetime.now(_dt.UTC).isoformat(), **summary}
    json_path = out / "summary.json"
    md_path = out / "summary.md"
    json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return json_path, md_path


def usage_markdown(usage: dict[str, Any]) -> str:
    """One line per model of a usage dict (`{model_spec: UsageReport dict}`)."""
    lines = ["", "Usage (all runs into this folder, resumes included):", ""]
    if not usage:
        lines.append("- no model calls")
    for spec, rep in usage.items():
        lines.append(
            f"- `{spec}`: {rep.get('calls', 0)} calls, {rep.get('cache_hits', 0)} cache hits, "
            f"{rep.get('prompt_tokens', 0)} prompt + {rep.get('completion_tokens', 0)} completion tokens"
            + (f" over {rep['runs']} run(s)" if rep.get("runs") else "")
        )
    return "\n".join(lines) + "\n"
