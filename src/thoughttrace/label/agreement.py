"""Agreement of predicted labels with reference labels: accuracy, macro-F1, Cohen's kappa, confusion
matrix and per-type precision/recall/F1 (plain counting; cross-checked against scikit-learn in tests).

Items the labeller left unlabelled are not dropped silently: `coverage` says how many got a label, the
metrics are computed on the covered items, and `accuracy_all` counts unlabelled items as wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

UNLABELLED = "(unlabelled)"


def agreement(gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Metrics for paired reference/predicted labels (pred None = unlabelled)."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred must have the same length")
    n_all = len(gold)
    pairs = [(g, p) for g, p in zip(gold, pred) if p]
    seen = sorted({g for g, _ in pairs} | {p for _, p in pairs if p})
    order = list(labels or [])
    order += [x for x in seen if x not in order]
    idx = {lab: i for i, lab in enumerate(order)}
    k = len(order)
    cm = np.zeros((k, k), dtype=np.int64)
    for g, p in pairs:
        cm[idx[g], idx[p]] += 1  # type: ignore[index]
    n = int(cm.sum())
    correct = int(np.trace(cm))
    per_type: dict[str, dict[str, float | int]] = {}
    f1s = []
    for lab, i in idx.items():
        tp = int(cm[i, i])
        support = int(cm[i].sum())
        predicted = int(cm[:, i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_type[lab] = {"precision": precision, "recall": recall, "f1": f1, "support": support,
                         "predicted": predicted}
        if support or predicted:
            f1s.append(f1)
    po = correct / n if n else 0.0
    pe = float((cm.sum(0) * cm.sum(1)).sum()) / (n * n) if n else 0.0
    kappa = (po - pe) / (1 - pe) if n and pe < 1 else (1.0 if n and po == 1 else 0.0)
    return {
        "n_items": n_all, "n_labelled": n, "coverage": n / n_all if n_all else 0.0,
        "accuracy": po, "accuracy_all": correct / n_all if n_all else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "cohen_kappa": kappa,
        "labels": order, "confusion_matrix": cm.tolist(), "per_type": per_type,
        "note": "rows = reference, columns = prediction; metrics over labelled items; accuracy_all counts "
                "unlabelled items as wrong; macro-F1 averages labels present in reference or prediction",
    }


def format_agreement(kind: str, m: dict[str, Any]) -> str:
    """A plain-text table for people."""
    lines = [f"{kind}: {m['n_labelled']}/{m['n_items']} items labelled (coverage {100 * m['coverage']:.1f}%)",
             f"  accuracy {m['accuracy']:.3f} (all items: {m['accuracy_all']:.3f})  macro-F1 {m['macro_f1']:.3f}  "
             f"Cohen's kappa {m['cohen_kappa']:.3f}"]
    w = max([len(x) for x in m["labels"]] + [5])
    lines.append(f"  {'label':<{w}}  precision  recall     f1  support")
    for lab in m["labels"]:
        r = m["per_type"][lab]
        lines.append(f"  {lab:<{w}}  {r['precision']:9.3f}  {r['recall']:6.3f}  {r['f1']:5.3f}  {r['support']:7d}")
    short = [lab[:6] for lab in m["labels"]]
    lines.append("  confusion (rows = reference, cols = prediction): " + " | ".join(short))
    for lab, row in zip(m["labels"], m["confusion_matrix"]):
        lines.append(f"  {lab:<{w}}  " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)
