"""High-level entry points used by the CLI: label a dataset file, evaluate a labels file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thoughttrace.data import iter_conversations
from thoughttrace.llm import Model

from .agreement import agreement
from .items import extract_items
from .labeler import LABELS_FORMAT_VERSION, Labeler, LabelRunSummary, Method, read_label_records
from .labelsets import KINDS, get_label_set


def check_kinds(kinds: Sequence[str]) -> list[str]:
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown label kind(s) {bad}; choose from {', '.join(KINDS)}")
    return list(dict.fromkeys(kinds))


def label_dataset(
    path: str | Path,
    model: Model,
    out: str | Path,
    *,
    kinds: Sequence[str] = ("reason", "reaction"),
    method: Method = "generate",
    only_missing: bool = False,
    limit: int | None = None,
    batch_size: int = 16,
    max_attempts: int = 3,
    retry_unlabelled: bool = False,
    skip_invalid: bool = False,
    progress: bool = False,
    constrained: bool = True,
) -> LabelRunSummary:
    """Label a dataset file into a labels JSONL (resumable); returns what was done."""
    kinds = check_kinds(kinds)
    labeler = Labeler(model, method=method, max_attempts=max_attempts, constrained=constrained)
    items = extract_items(iter_conversations(path, skip_invalid=skip_invalid), kinds, only_missing=only_missing)
    return labeler.label_file(items, out, batch_size=batch_size, retry_unlabelled=retry_unlabelled, limit=limit,
                              progress=progress)


def write_meta(out: str | Path, meta: dict[str, Any]) -> Path:
    """`OUT.meta.json` beside a labels file: format version, model, method, counts, usage.

    A labels file is resumed run after run; each run's usage is appended to `OUT.usage.jsonl` and
    `usage` here is the sum over every run (the labelling's whole cost), `usage_this_run` this run's.
    """
    from thoughttrace.llm.ledger import UsageLedger

    p = Path(str(out) + ".meta.json")
    usage = meta.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("models"), dict):
        ledger = UsageLedger(str(out) + ".usage.jsonl")
        ledger.append(usage["models"])
        meta = {**meta, "usage": {"format_version": usage.get("format_version", 1), "models": ledger.total(),
                                  "runs": len(ledger.runs())},
                "usage_this_run": usage}
    p.write_text(json.dumps({"format_version": LABELS_FORMAT_VERSION, **meta}, indent=2, ensure_ascii=False,
                            default=str), encoding="utf-8")
    return p


def _reference(path: str | Path, kinds: Sequence[str]) -> dict[str, tuple[str, str]]:
    """item_id -> (kind, reference label), from a dataset file or from another labels file."""
    p = Path(path)
    with open(p, encoding="utf-8") as fh:
        first = next((ln for ln in fh if ln.strip()), "")
    try:
        head = json.loads(first) if first else {}
    except json.JSONDecodeError:
        head = {}
    ref: dict[str, tuple[str, str]] = {}
    if isinstance(head, dict) and "item_id" in head:
        for rec in read_label_records(p):
            if rec["kind"] in kinds and rec.get("status") == "ok" and rec.get("label"):
                ref[rec["item_id"]] = (rec["kind"], rec["label"])
        return ref
    for item in extract_items(iter_conversations(p), kinds):
        if item.gold:
            ref[item.item_id] = (item.kind, item.gold)
    return ref


def evaluate_labels(reference: str | Path, predictions: str | Path,
                    kinds: Sequence[str] = ("reason", "reaction", "domain", "relation")) -> dict[str, Any]:
    """Agreement per kind of the predictions with the reference labels (dataset labels or a labels file)."""
    kinds = check_kinds(kinds)
    ref = _reference(reference, kinds)
    preds = {r["item_id"]: r for r in read_label_records(predictions)}
    result: dict[str, Any] = {"format_version": LABELS_FORMAT_VERSION, "reference": str(reference),
                              "predictions": str(predictions), "kinds": {}}
    models = sorted({str(r.get("model")) for r in preds.values()})
    result["models"] = models
    for kind in kinds:
        ids = [i for i, (k, _g) in ref.items() if k == kind and i in preds]
        if not ids:
            continue
        gold = [ref[i][1] for i in ids]
        pred = [preds[i]["label"] if preds[i].get("status") == "ok" else None for i in ids]
        result["kinds"][kind] = agreement(gold, pred, get_label_set(kind).names)
    if not result["kinds"]:
        raise ValueError(
            f"no item of {predictions} has a reference label in {reference}: check that both come from the "
            "same dataset (item ids are kind:conversation:message:index) and that the reference has labels"
        )
    return result
