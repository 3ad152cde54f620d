"""LLM labelling of thought types, domains and turn relations, and agreement with existing labels.

`label_dataset(path, model, out, kinds=...)` writes a resumable labels JSONL; `evaluate_labels(ref, pred)`
compares it with the dataset's own labels (accuracy, macro-F1, Cohen's kappa, confusion matrix).
Label definitions and few-shot examples are data files (`examples.yaml`, `relations.yaml`, taxonomy.yaml
of the dataset core); prompts are `prompts/*.txt`.
"""

from .agreement import agreement, format_agreement
from .items import LabelItem, extract_items, make_item_id
from .labeler import (
    LABELS_FORMAT_VERSION,
    Labeler,
    LabelFileError,
    LabelResult,
    LabelRunSummary,
    read_label_records,
)
from .labelsets import KINDS, LabelSet, get_label_set
from .parse import parse_label
from .run import evaluate_labels, label_dataset, write_meta

__all__ = [
    "KINDS", "LABELS_FORMAT_VERSION", "LabelFileError", "LabelItem", "LabelResult", "LabelRunSummary", "LabelSet",
    "Labeler", "agreement", "evaluate_labels", "extract_items", "format_agreement", "get_label_set",
    "label_dataset", "make_item_id", "parse_label", "read_label_records", "write_meta",
]
