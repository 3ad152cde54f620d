"""A usage ledger beside a resumable output: every run appends its usage, summaries report the sum.

A resumed eval or labelling run calls the model only for what was missing; its own usage is a fraction
of the study's cost. The ledger (`usage.jsonl`, one line per run) keeps each run's usage so the summary
can report the cumulative figures (calls, cache hits, tokens, wall time, cost) of every run into the folder.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

LEDGER_FORMAT_VERSION = 1

#: numeric fields of a UsageReport that add up across runs
_ADDITIVE = ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "errors", "retries", "wall_seconds")


def _add(total: dict[str, Any], rep: dict[str, Any]) -> None:
    for k in _ADDITIVE:
        total[k] = total.get(k, 0) + (rep.get(k) or 0)
    if rep.get("cost_usd") is not None:
        total["cost_usd"] = (total.get("cost_usd") or 0.0) + float(rep["cost_usd"])
    else:
        total.setdefault("cost_usd", None)
    for key in ("role",):
        if key in rep:
            roles = [r for r in str(total.get(key, "")).split("+") + str(rep[key]).split("+") if r]
            total[key] = "+".join(dict.fromkeys(roles))


class UsageLedger:
    """`usage.jsonl`: one `{format_version, created, usage: {model_spec: report}}` line per run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def runs(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that run's usage is lost, the others count
            if isinstance(rec, dict) and isinstance(rec.get("usage"), dict):
                out.append(rec)
        return out

    def append(self, usage: dict[str, dict[str, Any]]) -> None:
        """Record one run's usage (`{model_spec: UsageReport dict}`)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"format_version": LEDGER_FORMAT_VERSION, "created": _dt.datetime.now(_dt.UTC).isoformat(),
               "usage": usage}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")

    def total(self) -> dict[str, dict[str, Any]]:
        """Per model spec, the sum over every recorded run (with `runs`: how many runs used it)."""
        total: dict[str, dict[str, Any]] = {}
        for rec in self.runs():
            for spec, rep in rec["usage"].items():
                if not isinstance(rep, dict):
                    continue
                t = total.setdefault(spec, {"runs": 0})
                t["runs"] += 1
                _add(t, rep)
        return total


def record_and_total(path: str | Path, usage: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Append this run's usage to the ledger at `path`; return `{this_run, cumulative, runs}` for a summary."""
    ledger = UsageLedger(path)
    ledger.append(usage)
    return {"this_run": usage, "cumulative": ledger.total(), "runs": len(ledger.runs())}
