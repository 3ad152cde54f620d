"""Label records from `thoughttrace label` applied on top of a dataset's own labels.

Why: a researcher's data often has no thought-type labels; `label` writes them to a JSONL file and
`analyze --labels FILE` uses them without rewriting the dataset. The record format is the one `label`
writes (documented in docs/analysis.md), read here by field name so analysis does not import label:

    {"kind": "reason"|"reaction"|"domain"|"relation", "conversation_id": str, "message_id": str|null,
     "index": int|null, "label": str|null, "status": "ok"|"unlabelled", ...}

Records with status other than "ok" (or a null label) are ignored: unlabelled stays unlabelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thoughttrace.data import Conversation, DatasetError
from thoughttrace.data.io import iter_json_objects

KINDS = ("reason", "reaction", "domain", "relation")


@dataclass
class LabelOverlay:
    """Labels keyed by (kind, conversation id, message id, thought index)."""

    labels: dict[tuple[str, str, str | None, int | None], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def count(self, kind: str) -> int:
        return sum(1 for k in self.labels if k[0] == kind)

    def get(self, kind: str, conv_id: str, message_id: str | None = None, index: int | None = None) -> str | None:
        return self.labels.get((kind, conv_id, message_id, index))

    def add(self, record: Mapping[str, Any]) -> None:
        kind = record.get("kind")
        if kind not in KINDS:
            raise ValueError(f"label record with unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        if record.get("status", "ok") != "ok" or not record.get("label"):
            return
        idx = record.get("index")
        msg = record.get("message_id")
        key = (str(kind), str(record["conversation_id"]), None if msg is None else str(msg),
               None if idx is None else int(idx))
        self.labels[key] = str(record["label"])

    def apply(self, conv: Conversation) -> Conversation:
        """A copy of the conversation with overlay labels written into its thoughts and domain."""
        if not self.labels:
            return conv
        conv = conv.model_copy(deep=True)
        dom = self.get("domain", conv.id)
        if dom:
            conv.domain = dom
        for m in conv.messages:
            kind = "reason" if m.type == "user" else "reaction"
            for i, t in enumerate((m.reasons if m.type == "user" else m.reactions) or []):
                lab = self.get(kind, conv.id, m.id, i)
                if lab:
                    t.label = lab
        return conv

    def relations(self) -> dict[tuple[str, str], str]:
        """(conversation id, user message id) -> relation of that message to the previous user message."""
        return {(c, m): lab for (k, c, m, _i), lab in self.labels.items() if k == "relation" and m is not None}


def load_label_records(paths: Iterable[str | Path]) -> LabelOverlay:
    """Read one or more label JSONL files (a header line with `format_version` and no `kind` is skipped)."""
    overlay = LabelOverlay()
    for path in paths:
        missing = f"{path}: no such labels file; create it with `thoughttrace label`"
        for line_no, rec in iter_json_objects(path, missing=missing):
            if "kind" not in rec:
                continue
            try:
                overlay.add(rec)
            except (KeyError, ValueError, TypeError) as exc:
                raise DatasetError(f"{path}: line {line_no}: bad label record ({exc})") from exc
    return overlay
