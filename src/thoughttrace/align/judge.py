"""Arena-Hard-style pairwise judging: the judge answers the question itself, then gives one verdict label.

Parsing is strict: exactly one distinct `[[label]]` among A>>B, A>B, A=B, B>A, B>>A. A reply without one
(or with conflicting ones) is a `ParseError` keeping the raw text; the judge is asked again with the
error fed back (`retries` times), then, as the documented fallback, asked for the verdict alone as JSON
constrained by a schema (backends with grammar support honour it; the reply is validated with pydantic
either way). A game that still has no verdict is recorded with `verdict = None` and left out of the
scores (counted in the results as `unparsed`).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from thoughttrace.llm import ChatMessage, Model, ParseError

from .prompts import fill, judge_labels, template
from .records import FORMAT_VERSION

Verdict = Literal["A>>B", "A>B", "A=B", "B>A", "B>>A"]
VERDICTS: tuple[str, ...] = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
_LABEL = re.compile(r"\[\[\s*(A>>B|A>B|A=B|B>A|B>>A)\s*\]\]")
#: the verdict of the same judgement seen from the other side
SWAP: dict[str, str] = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}


def parse_verdict(text: str) -> str:
    """The one verdict label in a judge's reply; ParseError when there is none or they disagree."""
    found = {m.group(1) for m in _LABEL.finditer(text)}
    if not found:
        raise ParseError("no verdict label like [[A>B]] in the judge's reply", text)
    if len(found) > 1:
        raise ParseError(f"conflicting verdict labels {sorted(found)} in the judge's reply", text)
    return found.pop()


class _ConstrainedVerdict(BaseModel):
    verdict: Verdict


VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}},
    "required": ["verdict"],
}


def parse_constrained(text: str) -> str:
    """The JSON fallback reply {"verdict": LABEL}, validated; ParseError otherwise."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ParseError("no JSON object in the constrained verdict reply", text)
    try:
        return _ConstrainedVerdict.model_validate(json.loads(text[start:end + 1])).verdict
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ParseError(f"constrained verdict is not valid ({type(exc).__name__})", text) from exc


class Judgment(BaseModel):
    """One game: the answers of `model_a` (shown as A) and `model_b` (shown as B) to one question."""

    format_version: int = FORMAT_VERSION
    question_id: str
    game: int  # 1: baseline shown first; 2: positions swapped
    model_a: str
    model_b: str
    judge: str
    verdict: Verdict | None
    answers_sha256: str = ""  # hash of the question and both answers: a changed answer is judged again
    attempts: int
    fallback: bool = False
    raw: str
    #: the arena-hard-auto judgment line and game this was read from (kept so an export writes them back as read)
    source: dict[str, Any] | None = Field(default=None, exclude=True)

    def outcome(self) -> tuple[float, float] | None:
        """(score for A, weight) from prompts/judge.yaml, or None when the game has no verdict."""
        if self.verdict is None:
            return None
        lab = judge_labels()[self.verdict]
        return lab["score"], lab["weight"]


def game_hash(question: str, answer_a: str, answer_b: str) -> str:
    import hashlib

    return hashlib.sha256(json.dumps([question, answer_a, answer_b]).encode()).hexdigest()


def judge_prompt(question: str, answer_a: str, answer_b: str) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content=template("judge_system")),
        ChatMessage(role="user", content=fill("judge_user", question=question, answer_a=answer_a, answer_b=answer_b)),
    ]


async def ajudge(
    judge: Model, question: str, answer_a: str, answer_b: str, *, max_tokens: int = 1024, retries: int = 2,
    constrained_fallback: bool = True,
) -> tuple[str | None, int, bool, str]:
    """(verdict or None, attempts, used_fallback, raw reply) for one ordered pair of answers."""
    msgs = judge_prompt(question, answer_a, answer_b)
    raw = ""
    attempts = 0
    for attempt in range(retries + 1):
        attempts += 1
        gen = await judge.agenerate(msgs, max_tokens=max_tokens, temperature=0.0, sample_index=attempt)
        raw = gen.text
        try:
            return parse_verdict(raw), attempts, False, raw
        except ParseError as exc:
            msgs = [*msgs, ChatMessage(role="assistant", content=raw),
                    ChatMessage(role="user", content=fill("judge_retry", error=str(exc).split(" (raw output")[0]))]
    if constrained_fallback:
        attempts += 1
        base = judge_prompt(question, answer_a, answer_b)
        msgs = [*base, ChatMessage(role="user", content=template("judge_constrained"))]
        gen = await judge.agenerate(msgs, max_tokens=32, temperature=0.0, json_schema=VERDICT_SCHEMA)
        try:
            return parse_constrained(gen.text), attempts, True, raw + "\n[constrained] " + gen.text
        except ParseError:
            raw = raw + "\n[constrained] " + gen.text
    return None, attempts, False, raw
