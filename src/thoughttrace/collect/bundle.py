"""The study's dataset as files that stand alone: conversations, participants (with screening and survey
answers), the design, the study versions, and a codebook that names every field, its type and allowed
values.

Files (each carries `format_version`):
- `conversations.jsonl`: the released ThoughtTrace schema, one conversation a line (see `export.py`);
- `participants.jsonl`: one participant a line: stage, `completed` (they finished, even if withdrawn
  later), `withdrawn`, the study version and the consent text they agreed to, the design row with its
  model and task order, screening and survey answers;
- `design.json`: every design the study had (rows, the rule that made them, how rows are assigned) and
  every study version (hash, consent hash, design id);
- `codebook.json` / `codebook.md`: every field of the files above, with types and allowed values,
  including each version's screening and survey items;
- `manifest.json`: counts and file names.

Everything is produced in pieces by `bundle_pieces`, read from one `Database.snapshot()`, so a caller on
the event loop can hand the loop back between pieces and no participant waits for an export.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from .db import Participant
from .design import Design
from .export import EXPORT_FORMAT_VERSION, iso, iter_export, participant_pages
from .study import StudyConfig, SurveyItem
from .versions import study_design, version_rows

BUNDLE_FORMAT_VERSION = 1
CODEBOOK_FORMAT_VERSION = 1
FILES = ("conversations.jsonl", "participants.jsonl", "design.json", "codebook.json", "codebook.md", "manifest.json")

#: (field, type, description, allowed values or None) of every conversation record
CONVERSATION_FIELDS: list[tuple[str, str, str, Any]] = [
    ("id", "string", "user{N}_task{K}_conversation1: participant row N, task position K (1-based)", None),
    ("user_id", "string", "user{N}: the participant (never a Prolific id)", None),
    ("model_name", "string", "the model's display name", None),
    ("model_provider", "string", "who provides the model", None),
    ("model_key", "string", "the model's key in the study configuration", "the study version's model keys"),
    ("created_at", "string (ISO 8601, UTC)", "when the task's chat started", None),
    ("updated_at", "string (ISO 8601, UTC)", "the last message, note or summary", None),
    ("task_statement", "string", "the task as the participant stated it (or the fixed task)", None),
    ("task_summary", "string | null", "the participant's summary after the task", None),
    ("task_expectation", "string | null", "what the participant expected of the model", None),
    ("survey_answers", "list[object] | null", "one element: the participant's survey answers by item id", None),
    ("domain", "string | null", "the conversation's domain (empty from the platform; set by `thoughttrace label`)",
     None),
    ("topic", "string | null", "the conversation's topic (empty from the platform; set by labelling)", None),
    ("study_version", "integer | null", "the study configuration version the participant started under",
     "ids in design.json versions"),
    ("design_id", "string | null", "the design the participant's row belongs to", "ids in design.json designs"),
    ("design_row", "integer | null", "the participant's design row (0-based)", "row indices of the design"),
    ("quality_flags", "object", "flag name -> count for the participant (see docs/platform.md)", None),
    ("messages", "list[object]", "the chat in order", None),
    ("messages[].id", "string", "{conversation id}_m{seq}", None),
    ("messages[].timestamp", "string (ISO 8601, UTC)", "when the message was stored", None),
    ("messages[].type", "string", "who wrote it", ["user", "assistant"]),
    ("messages[].content", "string", "the message text", None),
    ("messages[].reasons", "list[object]", "user messages: the private reason (content, timestamp, label)", None),
    ("messages[].reactions", "list[object]", "assistant messages: the private reaction", None),
    ("messages[].reasons[].content", "string", "the note's text (the model never saw it)", None),
    ("messages[].reasons[].timestamp", "string (ISO 8601, UTC)", "when the note was stored", None),
    ("messages[].reasons[].label", "string | null", "the taxonomy type the participant chose", "reason labels"),
    ("messages[].reactions[].content", "string", "the note's text (the model never saw it)", None),
    ("messages[].reactions[].timestamp", "string (ISO 8601, UTC)", "when the note was stored", None),
    ("messages[].reactions[].label", "string | null", "the taxonomy type the participant chose", "reaction labels"),
    ("messages[].metadata", "object", "assistant messages: how the answer was sampled", None),
    ("messages[].metadata.seed", "integer | null", "the sampling seed of the request", None),
    ("messages[].metadata.latency_ms", "integer | null", "answer time in milliseconds", None),
    ("messages[].metadata.model_key", "string", "the model that answered", None),
    ("messages[].metadata.finish_reason", "string | null", "how the answer ended", ["stop", "length", "dropped"]),
    ("prolific_pid", "string | null", "only with include_prolific", None),
    ("prolific_study_id", "string | null", "only with include_prolific", None),
    ("prolific_session_id", "string | null", "only with include_prolific", None),
]

PARTICIPANT_FIELDS: list[tuple[str, str, str, Any]] = [
    ("format_version", "integer", "this file's format", [BUNDLE_FORMAT_VERSION]),
    ("user", "string", "user{N}, as in conversations.jsonl", None),
    ("stage", "string", "where the participant is (or ended)", "flow.STAGES"),
    ("completed", "boolean", "finished the study (stays true when they withdrew afterwards)", [True, False]),
    ("withdrawn", "boolean", "their answers were withdrawn (deleted) at their request", [True, False]),
    ("withdrawn_from_stage", "string | null", "the stage a withdrawal started from", "flow.STAGES"),
    ("study_version", "integer | null", "the study configuration version they started under", None),
    ("consent_version", "integer | null", "the version whose consent text they agreed to", None),
    ("consent_hash", "string | null", "sha256 of the consent text they agreed to", None),
    ("consented_at", "string | null", "when they agreed (ISO 8601, UTC)", None),
    ("design_id", "string | null", "their design (design.json)", None),
    ("design_row", "integer | null", "their design row; null before the tutorial quiz or when full", None),
    ("model_order", "list[string]", "model keys by task position (their design row)", None),
    ("task_order", "list[integer]", "listed task indices (0-based) by task position", None),
    ("quiz_attempts", "integer", "tutorial quiz attempts", None),
    ("screening", "object | null", "screening answers by item id (see screening items)", None),
    ("survey", "object | null", "survey answers by item id (see survey items)", None),
    ("created_at", "string", "entry (ISO 8601, UTC)", None),
    ("completed_at", "string | null", "when they reached an end stage", None),
    ("withdrawn_at", "string | null", "when their answers were withdrawn", None),
    ("prolific_pid", "string | null", "only with include_prolific", None),
    ("prolific_study_id", "string | null", "only with include_prolific", None),
    ("prolific_session_id", "string | null", "only with include_prolific", None),
]


def completed(p: Participant) -> bool:
    """Finished the study: at `done`, or withdrawn after reaching it (they did the work)."""
    return p.stage == "done" or (p.stage == "withdrawn" and p.withdrawn_from_stage == "done")


def participant_record(p: Participant, design: Design | None, *, include_prolific: bool = False) -> dict[str, Any]:
    """One participant line of `participants.jsonl`."""
    row = design.row(p.design_row) if design is not None and p.design_row is not None else None
    out: dict[str, Any] = {
        "format_version": BUNDLE_FORMAT_VERSION, "user": f"user{p.id}", "stage": p.stage, "completed": completed(p),
        "withdrawn": p.stage == "withdrawn", "withdrawn_from_stage": p.withdrawn_from_stage,
        "study_version": p.study_version, "consent_version": p.consent_version, "consent_hash": p.consent_hash,
        "consented_at": iso(p.consented_at), "design_id": p.design_id, "design_row": p.design_row,
        "model_order": list(row.models) if row else [], "task_order": list(row.tasks) if row else [],
        "quiz_attempts": p.quiz_attempts, "screening": p.screening, "survey": p.survey,
        "created_at": iso(p.created_at), "completed_at": iso(p.completed_at), "withdrawn_at": iso(p.withdrawn_at),
    }
    if include_prolific:
        out.update(prolific_pid=p.prolific_pid, prolific_study_id=p.study_id, prolific_session_id=p.session_id)
    return out


def item_entry(item: SurveyItem) -> dict[str, Any]:
    """A screening or survey item in the codebook: its type and the answers it allows."""
    allowed: Any
    if item.type in ("single", "multiple"):
        allowed = list(item.options)
    elif item.type == "likert":
        allowed = {"min": 1, "max": item.scale, "low_label": item.low_label, "high_label": item.high_label}
    elif item.type == "number":
        allowed = {"min": item.min, "max": item.max, "integer": item.integer}
    else:
        allowed = {"max_chars": item.max_chars}
    kind = {"single": "string", "multiple": "string (chosen options joined by ', ')", "likert": "integer",
            "number": "integer" if item.integer else "number", "text": "string"}[item.type]
    return {"id": item.id, "question": item.question, "item_type": item.type, "type": kind, "allowed": allowed,
            "required": item.required, "attention_check": item.expected_answers() or None,
            "screen_out_if": item.screen_out_values() or None}


def _fields(rows: list[tuple[str, str, str, Any]]) -> list[dict[str, Any]]:
    return [{"name": n, "type": t, "description": d, "allowed": a} for n, t, d, a in rows]


def codebook(studies: Mapping[int, StudyConfig], current: StudyConfig, current_version: int | None,
             versions: list[dict[str, Any]]) -> dict[str, Any]:
    """Every field of the bundle, each version's items and texts' hashes, and the designs."""
    from .flow import STAGES

    by_version = dict(studies) or {current_version or 0: current}
    return {
        "format_version": CODEBOOK_FORMAT_VERSION, "study": current.name, "current_version": current_version,
        "export_format_version": EXPORT_FORMAT_VERSION, "bundle_format_version": BUNDLE_FORMAT_VERSION,
        "stages": list(STAGES), "versions": versions,
        "files": {"conversations.jsonl": _fields(CONVERSATION_FIELDS),
                  "participants.jsonl": _fields(PARTICIPANT_FIELDS)},
        "labels": {"reason": list(current.reason_labels()), "reaction": list(current.reaction_labels())},
        "items": {str(v): {"screening": [item_entry(i) for i in st.screening],
                           "survey": [item_entry(i) for i in st.survey_questions()],
                           "models": [m.key for m in st.models], "tasks_per_participant": st.tasks_per_participant,
                           "tasks": [t.statement for t in st.tasks]}
                  for v, st in sorted(by_version.items())},
        "designs": _designs(by_version),
    }


def _designs(studies: Mapping[int, StudyConfig]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v, st in sorted(studies.items()):
        d = study_design(st)
        entry = out.setdefault(d.design_id, {**d.to_dict(), "versions": []})
        entry["versions"].append(v)
    return out


def codebook_markdown(book: dict[str, Any]) -> str:
    """The codebook for people: the same content as codebook.json."""
    lines = [f"# Codebook: {book['study']}", "",
             f"codebook format {book['format_version']}, export format {book['export_format_version']}, "
             f"bundle format {book['bundle_format_version']}; current study version: {book['current_version']}", ""]
    lines += ["## Study versions", "", "| version | content sha256 | consent sha256 | design | created |",
              "|---|---|---|---|---|"]
    lines += [f"| {v['version']} | `{v['content_hash'][:16]}` | `{v['consent_hash'][:16]}` | `{v['design_id']}` | "
              f"{v['created_at']} |" for v in book["versions"]]
    for name, fields in book["files"].items():
        lines += ["", f"## {name}", "", "| field | type | allowed | description |", "|---|---|---|---|"]
        lines += [f"| `{f['name']}` | {f['type']} | {_cell(f['allowed'])} | {f['description']} |" for f in fields]
    lines += ["", "## Stages", "", ", ".join(f"`{s}`" for s in book["stages"])]
    for v, items in book["items"].items():
        for group in ("screening", "survey"):
            lines += ["", f"## Version {v}: {group} items", ""]
            if not items[group]:
                lines.append("(none)")
                continue
            lines += ["| id | question | type | allowed |", "|---|---|---|---|"]
            lines += [f"| `{i['id']}` | {_cell(i['question'])} | {i['type']} | {_cell(i['allowed'])} |"
                      for i in items[group]]
    for design_id, d in book["designs"].items():
        lines += ["", f"## Design `{design_id}` (versions {', '.join(map(str, d['versions']))})", "",
                  f"- models: {d['model_rule']}", f"- tasks: {d['task_rule']}", f"- crossing: {d['crossing']}",
                  f"- assignment: {d['assignment']}", "", "| row | models | tasks |", "|---|---|---|"]
        lines += [f"| {r['row']} | {' > '.join(r['models'])} | {' > '.join(map(str, r['tasks']))} |"
                  for r in d["rows"]]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def bundle_pieces(s: Session, studies: Mapping[int, StudyConfig], current: StudyConfig,
                  current_version: int | None, *, include_prolific: bool = False, completed_only: bool = False,
                  batch: int = 50) -> Iterator[tuple[str, str]]:
    """(file name, text) pieces of the bundle, file after file, a few dozen participants per piece."""
    n_conv = 0
    lines: list[str] = []
    for n, record in enumerate(iter_export(s, include_prolific=include_prolific, completed_only=completed_only,
                                           batch=batch, study=current), start=1):
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        n_conv = n
        if len(lines) >= batch:
            yield "conversations.jsonl", "".join(lines)
            lines = []
    yield "conversations.jsonl", "".join(lines)
    designs = {study_design(st).design_id: study_design(st) for st in studies.values()}
    designs.setdefault(study_design(current).design_id, study_design(current))
    n_people = 0
    for people in participant_pages(s, batch=batch, completed_only=completed_only):
        n_people += len(people)
        yield "participants.jsonl", "".join(
            json.dumps(participant_record(p, designs.get(p.design_id or ""), include_prolific=include_prolific),
                       ensure_ascii=False) + "\n" for p in people)
        s.expunge_all()
    versions = version_rows(s.connection())
    yield "design.json", json.dumps({"format_version": BUNDLE_FORMAT_VERSION, "versions": versions,
                                     "designs": _designs(studies or {current_version or 0: current})},
                                    ensure_ascii=False, indent=1)
    book = codebook(studies, current, current_version, versions)
    yield "codebook.json", json.dumps(book, ensure_ascii=False, indent=1)
    yield "codebook.md", codebook_markdown(book)
    yield "manifest.json", json.dumps({"format_version": BUNDLE_FORMAT_VERSION, "study": current.name,
                                       "conversations": n_conv, "participants": n_people, "files": list(FILES),
                                       "include_prolific": include_prolific, "completed_only": completed_only},
                                      indent=1)


class ZipSink:
    """Collects bundle pieces into a zip archive in memory, one file after the other."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.zip = zipfile.ZipFile(self.buffer, "w", compression=zipfile.ZIP_DEFLATED)
        self._name: str | None = None
        self._file: Any = None

    def add(self, name: str, text: str) -> None:
        if name != self._name:
            if self._file is not None:
                self._file.close()
            self._name, self._file = name, self.zip.open(name, "w")
        self._file.write(text.encode("utf-8"))

    def finish(self) -> bytes:
        if self._file is not None:
            self._file.close()
        self.zip.close()
        return self.buffer.getvalue()


def write_bundle(pieces: Iterator[tuple[str, str]], out_dir: str | Path) -> list[Path]:
    """Write the pieces into `out_dir` (created); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    handles: dict[str, Any] = {}
    try:
        for name, text in pieces:
            if name not in handles:
                handles[name] = (out / name).open("w", encoding="utf-8")
            handles[name].write(text)
    finally:
        for h in handles.values():
            h.close()
    return [out / n for n in handles]
