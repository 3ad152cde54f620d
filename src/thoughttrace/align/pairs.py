"""Preference pairs: chosen = rewrite, rejected = original, prompt = the conversation up to the user message.

Written in TRL's conversational preference format (`prompt` a list of messages, `chosen`/`rejected` one
assistant message each) or as plain strings; deduplicated, length-filtered, each with its provenance.
Other preference sources (e.g. WildChat-derived pairs) come in through `import_pairs`, a validated loader
that turns them into the same rows, so every training set in a comparison is read by the same code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .degenerate import degenerate_reason
from .records import FORMAT_VERSION, AlignError, iter_jsonl
from .rewrite import Rewrite

PairFormat = Literal["conversational", "plain"]
Msg = dict[str, str]


class Provenance(BaseModel):
    model_config = ConfigDict(extra="allow")
    source: str = "thoughttrace"
    conversation_id: str | None = None
    message_id: str | None = None
    guide: str | None = None
    rewriter: str | None = None
    reaction_labels: list[str] = Field(default_factory=list)


class Pair(BaseModel):
    """One preference pair; `prompt`/`chosen`/`rejected` are what DPOTrainer reads."""

    format_version: int = FORMAT_VERSION
    id: str
    pair_format: PairFormat
    prompt: list[Msg] | str
    chosen: list[Msg] | str
    rejected: list[Msg] | str
    provenance: Provenance

    def texts(self) -> tuple[str, str, str]:
        return _as_text(self.prompt), _as_text(self.chosen), _as_text(self.rejected)


@dataclass
class PairReport:
    """What pair building kept and why it dropped the rest."""

    input: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, why: str) -> None:
        self.dropped[why] = self.dropped.get(why, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.input, "kept": self.kept, "dropped": dict(self.dropped)}


def _as_text(x: list[Msg] | str) -> str:
    if isinstance(x, str):
        return x
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in x)


def plain_prompt(messages: Sequence[Msg]) -> str:
    """A conversation as one string for the plain format: the last user message alone when it is the only turn."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages) + "\n\nAssistant:"


def _pair_id(prompt: Any, chosen: str, rejected: str) -> str:
    blob = json.dumps([prompt, chosen, rejected], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_pair(prompt: Sequence[Msg], chosen: str, rejected: str, provenance: Provenance,
              fmt: PairFormat = "conversational") -> Pair:
    """One pair in the requested format; the id hashes the content, so duplicates share it."""
    if not prompt or prompt[-1]["role"] != "user":
        raise AlignError("a pair's prompt must end with the user message the answers reply to")
    pid = _pair_id(list(prompt), chosen, rejected)
    if fmt == "conversational":
        return Pair(id=pid, pair_format=fmt, prompt=list(prompt), chosen=[{"role": "assistant", "content": chosen}],
                    rejected=[{"role": "assistant", "content": rejected}], provenance=provenance)
    if fmt == "plain":
        return Pair(id=pid, pair_format=fmt, prompt=plain_prompt(prompt), chosen=chosen, rejected=rejected,
                    provenance=provenance)
    raise AlignError(f"unknown pair format {fmt!r}; use conversational or plain")


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def filter_pairs(
    candidates: Iterable[tuple[Sequence[Msg], str, str, Provenance]],
    *, fmt: PairFormat = "conversational", min_chars: int = 1, max_chars: int | None = 20000,
    max_ratio: float | None = None, report: PairReport | None = None,
) -> list[Pair]:
    """Drop empty, identical, too short/long and duplicate pairs; keep the first of each duplicate."""
    report = report if report is not None else PairReport()
    seen: set[str] = set()
    out: list[Pair] = []
    for prompt, chosen, rejected, prov in candidates:
        report.input += 1
        chosen, rejected = chosen.strip(), rejected.strip()
        if not chosen or not rejected:
            report.drop("empty")
            continue
        if _normal(chosen) == _normal(rejected):
            report.drop("identical")
            continue
        if len(chosen) < min_chars or len(rejected) < min_chars:
            report.drop("too_short")
            continue
        if max_chars is not None and (len(chosen) > max_chars or len(rejected) > max_chars):
            report.drop("too_long")
            continue
        if max_ratio is not None and max(len(chosen), len(rejected)) > max_ratio * min(len(chosen), len(rejected)):
            report.drop("length_ratio")
            continue
        key = _pair_id([dict(m) for m in prompt], _normal(chosen), _normal(rejected))
        if key in seen:
            report.drop("duplicate")
            continue
        seen.add(key)
        out.append(make_pair(prompt, chosen, rejected, prov, fmt))
        report.kept += 1
    return out


def pairs_from_rewrites(rewrites: Iterable[Rewrite], *, report: PairReport | None = None,
                        keep_truncated: bool = False, **kwargs: Any) -> list[Pair]:
    """chosen = the rewrite, rejected = the original answer, with the rewrite's provenance.

    Rewrites that repeat a private thought verbatim are dropped (`quotes_thought`), and so are rewrites
    cut off at the token limit (`truncated`) unless `keep_truncated`, and degenerate ones (`align.degenerate`:
    loops, copies of the next message or of the original, length blow-ups), each counted in the report.
    """
    report = report if report is not None else PairReport()
    rows: list[Rewrite] = []
    for r in rewrites:
        bad = degenerate_reason(r.rewrite, r.original, r.next_message)
        if r.quotes_thought or (r.truncated and not keep_truncated) or bad:
            report.input += 1
            report.drop("quotes_thought" if r.quotes_thought else "truncated" if r.truncated and not keep_truncated
                        else f"degenerate_{bad}")
        else:
            rows.append(r)
    cands = (
        (r.prompt, r.rewrite, r.original,
         Provenance(conversation_id=r.conversation_id, message_id=r.message_id, guide=r.guide, rewriter=r.rewriter,
                    reaction_labels=r.reaction_labels))
        for r in rows
    )
    return filter_pairs(cands, report=report, **kwargs)


class ImportedPair(BaseModel):
    """A row of another preference source: strings or message lists (OpenAI roles)."""

    model_config = ConfigDict(extra="allow")
    prompt: str | list[Msg]
    chosen: str | list[Msg]
    rejected: str | list[Msg]

    @field_validator("prompt", "chosen", "rejected")
    @classmethod
    def _messages_ok(cls, v: str | list[Msg]) -> str | list[Msg]:
        if isinstance(v, str):
            if not v.strip():
                raise ValueError("is empty")
            return v
        if not v:
            raise ValueError("is an empty message list")
        for m in v:
            if set(m) - {"role", "content"} or m.get("role") not in ("system", "user", "assistant") \
                    or not isinstance(m.get("content"), str):
                raise ValueError("messages need exactly 'role' (system|user|assistant) and 'content' (a string)")
        return v


def _completion_text(v: str | list[Msg], what: str, line: int) -> str:
    if isinstance(v, str):
        return v
    # a full conversation ending with the answer (an implicit prompt) keeps only the final answer
    if v[-1]["role"] != "assistant":
        raise AlignError(f"line {line}: '{what}' must be a string or end with an assistant message")
    return v[-1]["content"]


def import_pairs(path: str | Path, *, source: str, fmt: PairFormat = "conversational",
                 report: PairReport | None = None, **filter_kwargs: Any) -> list[Pair]:
    """Load another preference source (JSONL with prompt/chosen/rejected) into validated, filtered pairs."""
    from pydantic import ValidationError

    cands: list[tuple[Sequence[Msg], str, str, Provenance]] = []
    for line_no, obj in iter_jsonl(path):
        try:
            row = ImportedPair.model_validate(obj)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(x) for x in e["loc"])
            raise AlignError(f"{path}: line {line_no}: field '{loc}': {e['msg']}; each line needs prompt, chosen "
                             "and rejected (strings or lists of {role, content} messages)") from exc
        prompt = [{"role": "user", "content": row.prompt}] if isinstance(row.prompt, str) else list(row.prompt)
        if prompt[-1]["role"] != "user":
            raise AlignError(f"{path}: line {line_no}: the prompt must end with a user message")
        extra = {k: v for k, v in (row.model_extra or {}).items() if isinstance(v, str | int | float) and k != "id"}
        prov = Provenance.model_validate({"source": source, "line": line_no,
                                          **{f"src_{k}": v for k, v in extra.items()}})
        cands.append((prompt, _completion_text(row.chosen, "chosen", line_no),
                      _completion_text(row.rejected, "rejected", line_no), prov))
    return filter_pairs(cands, fmt=fmt, report=report, **filter_kwargs)
