"""Per-step variable extraction: one structured call per chunk of timesteps, chunks concurrently.

For each step the model copies, from that step's own sentences, the agent's Action, Utterance, stated Goal
and stated Belief (State and Observation come from the timeline: what happened, and what the perception
step says the agent perceived). Validation is strict and model-independent: a field must be one of the
step's sentences (or a span of one, at least three words long), so nothing invented or taken from another
step gets in; an invalid chunk is fed back once, then that chunk keeps the deterministic timeline (own
actions from the perception step, utterances by `timeline.is_utterance`). Opt-in
(`AutoToMConfig.extract_steps`): it costs one call per chunk.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, Field

from .inference import gather_settled
from .prompts import render
from .structured import structured_step
from .timeline import Step
from .usage import TrackedModel

FIELDS = ("action", "utterance", "goal", "belief")


class StepVariables(BaseModel):
    step: int
    action: str | None = None
    utterance: str | None = None
    goal: str | None = None
    belief: str | None = None


class Extraction(BaseModel):
    steps: list[StepVariables] = Field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def grounded(value: str, sentences: list[str]) -> str | None:
    """The step's sentence that `value` copies (whole, or a span of 3+ words of it), else None."""
    v = _norm(value)
    if not v:
        return None
    for s in sentences:
        n = _norm(s)
        if v == n or (len(v.split()) >= 3 and v in n):
            return s
    return None


def extraction_schema(first: int, last: int) -> dict[str, Any]:
    text = {"anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}]}
    return {"type": "object", "required": ["steps"], "properties": {"steps": {
        "type": "array", "minItems": 1, "maxItems": last - first + 1, "items": {
            "type": "object", "required": ["step", *FIELDS],
            "properties": {"step": {"type": "integer", "minimum": first, "maximum": last},
                           **{f: text for f in FIELDS}}}}}}


async def _chunk(model: TrackedModel, agent: str, context: str, chunk: list[Step], constrained: bool
                 ) -> tuple[list[Step], dict[str, Any]]:
    first, last = chunk[0].index + 1, chunk[-1].index + 1
    by_number = {s.index + 1: s for s in chunk}

    def check(e: Extraction) -> None:
        for sv in e.steps:
            if sv.step not in by_number:
                raise ValueError(f"step {sv.step} is not one of steps {first}..{last}")
            for f in FIELDS:
                value = getattr(sv, f)
                if value and grounded(value, by_number[sv.step].sentences) is None:
                    raise ValueError(f"step {sv.step} {f} {value[:60]!r} is not a sentence of step {sv.step}; "
                                     "copy it word for word or use null")

    listing = "\n".join(f"Step {s.index + 1}:\n" + "\n".join(f"- {x}" for x in s.sentences) for s in chunk)
    prompt = render("extract_steps", context=context, agent=agent, steps=listing)
    value, trace = await structured_step(model, [{"role": "user", "content": prompt}], Extraction, check=check,
                                         max_tokens=min(60 + 90 * len(chunk), 500), constrained=constrained,
                                         json_schema=extraction_schema(first, last))
    if value is None:
        return chunk, {"steps": [first, last], "fallback": True, "llm": trace}
    out = []
    got = {sv.step: sv for sv in value.steps}
    for s in chunk:
        sv = got.get(s.index + 1)
        if sv is None:
            out.append(s)
            continue
        pick = {f: grounded(getattr(sv, f), s.sentences) if getattr(sv, f) else None for f in FIELDS}
        upd: dict[str, Any] = {"goal": pick["goal"], "belief": pick["belief"]}
        own = s.action or s.utterance  # the perception step's own action of this step (the step's cut)
        if pick["utterance"]:
            upd.update(utterance=pick["utterance"], action=None if s.action == pick["utterance"] else s.action)
        elif pick["action"] and own is None:
            upd["action"] = pick["action"]
        out.append(replace(s, **upd))
    return out, {"steps": [first, last], "llm": trace}


async def extract_steps(model: TrackedModel, steps: list[Step], agent: str, *, chunk_size: int = 4,
                        constrained: bool = True) -> tuple[list[Step], list[dict[str, Any]]]:
    """The timeline with each step's Action / Utterance / stated Goal / stated Belief filled in."""
    if not steps:
        return steps, []
    starts = range(0, len(steps), chunk_size)
    results = await gather_settled([
        _chunk(model, agent, steps[i - 1].state if i else "(the story begins)", steps[i:i + chunk_size], constrained)
        for i in starts
    ])
    out: list[Step] = []
    traces = []
    for new, tr in results:
        out.extend(new)
        traces.append(tr)
    return out, traces
