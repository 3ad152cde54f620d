"""A usage ledger beside a resumable output: every run appends its usage, summaries report the sum.

A resumed eval or labelling run calls the model only for what was missing; its own usage is a fraction
of the study's cost. The ledger (`usage.jsonl`, one line per run) keeps each run's usage so the summary
can report the cumulative figures (calls, cache hits, tokens, wall time, cost) of every run into the folder.

A run that attaches a `RunRecorder` also appends one `{run, spec, event: ...}` line per model call as it
happens; its closing summary line (same `run` id) supersedes those lines. A run killed before its summary
(SIGTERM, SIGKILL, a crash) is counted from its call lines, marked `interrupted`.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
import uuid
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
    for url, row in (rep.get("by_endpoint") or {}).items():  # per server of a pool, summed like the rest
        if isinstance(row, dict):
            acc = total.setdefault("by_endpoint", {}).setdefault(url, {})
            for k, v in row.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    acc[k] = acc.get(k, 0) + v
    for key in ("role",):
        if key in rep:
            roles = [r for r in str(total.get(key, "")).split("+") + str(rep[key]).split("+") if r]
            total[key] = "+".join(dict.fromkeys(roles))


class UsageLedger:
    """`usage.jsonl`: one `{format_version, created, usage: {model_spec: report}}` line per run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def runs(self) -> list[dict[str, Any]]:
        """One record per run: its summary line, or (killed before one) the sum of its call lines."""
        if not self.path.exists():
            return []
        out = []
        events: dict[str, dict[str, dict[str, Any]]] = {}
        summarised: set[str] = set()
        for line in self.path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: that line is lost, the others count
            if not isinstance(rec, dict):
                continue
            if isinstance(rec.get("usage"), dict):
                out.append(rec)
                if rec.get("run"):
                    summarised.add(str(rec["run"]))
            elif isinstance(rec.get("event"), dict) and rec.get("run") and rec.get("spec"):
                per = events.setdefault(str(rec["run"]), {}).setdefault(str(rec["spec"]), {})
                for k, v in rec["event"].items():
                    if isinstance(v, (int, float)):
                        per[k] = per.get(k, 0) + v
                    elif k == "by_endpoint" and isinstance(v, dict):  # a request sent, an error ... per server
                        for url, row in v.items():
                            acc = per.setdefault("by_endpoint", {}).setdefault(str(url), {})
                            for field, n in (row.items() if isinstance(row, dict) else ()):
                                if isinstance(n, (int, float)) and not isinstance(n, bool):
                                    acc[field] = acc.get(field, 0) + n
        for run, usage in events.items():
            if run not in summarised:
                out.append({"format_version": LEDGER_FORMAT_VERSION, "run": run, "interrupted": True, "usage": usage})
        return out

    def append(self, usage: dict[str, dict[str, Any]], run: str | None = None) -> None:
        """Record one run's usage (`{model_spec: UsageReport dict}`); `run` ties it to that run's call lines."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rec = {"format_version": LEDGER_FORMAT_VERSION, "created": _dt.datetime.now(_dt.UTC).isoformat(),
               "usage": usage} | ({"run": run} if run else {})
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


class RunRecorder:
    """Appends every model event of one run to a ledger as it happens; `finish` writes the run's summary."""

    def __init__(self, path: str | Path) -> None:
        self.ledger = UsageLedger(path)
        self.run = uuid.uuid4().hex
        self._lock = threading.Lock()

    def attach(self, model: Any) -> None:
        """Record `model`'s calls under its model string (model: a thoughttrace.llm.Model)."""
        spec = str(model.spec)

        def on_event(_model_id: str, increments: dict[str, float]) -> None:
            rec = {"format_version": LEDGER_FORMAT_VERSION, "run": self.run, "spec": spec, "event": increments}
            line = json.dumps(rec) + "\n"
            with self._lock:
                self.ledger.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.ledger.path, "a", encoding="utf-8") as fh:
                    fh.write(line)

        model.usage.add_listener(on_event)

    def finish(self, usage: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Append this run's summary; return `{this_run, cumulative, runs}` as `record_and_total` does."""
        with self._lock:
            self.ledger.append(usage, run=self.run)
        return {"this_run": usage, "cumulative": self.ledger.total(), "runs": len(self.ledger.runs())}


def calls_over_runs(cumulative: dict[str, dict[str, Any]], runs: int) -> str:
    """"N calls over K runs" (cache hits and tokens too) for a summary line."""
    calls = int(sum(r.get("calls", 0) for r in cumulative.values()))
    hits = int(sum(r.get("cache_hits", 0) for r in cumulative.values()))
    tokens = int(sum((r.get("prompt_tokens", 0) or 0) + (r.get("completion_tokens", 0) or 0)
                     for r in cumulative.values()))
    return (f"{calls} call{'s' if calls != 1 else ''} over {runs} run{'s' if runs != 1 else ''} "
            f"({hits} cache hits, {tokens} tokens)")
