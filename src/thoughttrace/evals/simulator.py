"""A simulated user: turn by turn it writes its reason, then its message, reads the answer, writes its
reaction and decides to go on or end. Its conversations are saved in the released schema.

Each user step is one JSON object validated with pydantic (`UserTurn`, `UserReaction`); the JSON schema is
also passed to backends that can constrain decoding. A step that does not parse is retried with the error
fed back; when every attempt fails the FALLBACK is to end the conversation there (the end reason is
recorded in the conversation's `simulation` block). The assistant sees only the messages: the user's
private notes are checked out of every assistant prompt (`check_no_leakage`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator

from thoughttrace.data import Conversation, Message, Thought
from thoughttrace.llm import GenerationConfig, Model, ParseError

from .leakage import check_no_leakage
from .resources import load_prompt
from .store import ItemStore, RunStats, run_items
from .transcript import clip

FORMAT_VERSION = 1

M = TypeVar("M", bound=BaseModel)


def _own_words(value: str) -> str:
    """Reject a copy of the format's placeholder (small models echo `<...>`), so the retry asks again."""
    v = value.strip()
    if not v or v in ("...", "…") or (v.startswith("<") and v.endswith(">")):
        raise ValueError("this is the format's placeholder, not your own words; write the actual text")
    return v


class UserTurn(BaseModel):
    reason: str = Field(min_length=1)
    message: str = Field(min_length=1)

    _check = field_validator("reason", "message")(_own_words)


class UserReaction(BaseModel):
    reaction: str = Field(min_length=1)
    decision: Literal["continue", "end"]

    _check = field_validator("reaction")(_own_words)


def parse_json_object(text: str, schema: type[M]) -> M:
    """The first {...} object in the text, validated; ParseError (raw text kept) otherwise."""
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end <= start:
        raise ParseError("no JSON object found; reply with one JSON object", text)
    blob = text[start : end + 1]
    try:
        data = json.loads(blob)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON ({exc.msg})", text) from exc
    if isinstance(data, dict):
        data = {k: (v.strip() if isinstance(v, str) else v) for k, v in data.items()}
        if isinstance(data.get("decision"), str):
            data["decision"] = data["decision"].lower()
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ParseError(f"the JSON object does not match the format ({problems})", text) from exc


class SimulationConfig(BaseModel):
    """Knobs of one simulated conversation."""

    turns: int = Field(default=4, ge=1, description="at most this many user messages")
    user_temperature: float = 0.8
    user_max_tokens: int = 200
    assistant_max_tokens: int = 400
    assistant_system: str | None = None
    max_retries: int = 2
    max_context_chars: int = 6000
    max_message_chars: int = 1200


class UserSimulator:
    """Plays one user with a task (and optionally a persona) against an assistant model."""

    def __init__(self, user_model: Model, assistant_model: Model, config: SimulationConfig | None = None) -> None:
        self.user_model = user_model
        self.assistant_model = assistant_model
        self.config = config or SimulationConfig()

    def _user_view(self, messages: Sequence[Message]) -> str:
        """The conversation as the user remembers it: messages plus their own private notes."""
        p = load_prompt("simulator")
        if not messages:
            return p.parts["empty_context"].strip()
        blocks = []
        for m in messages:
            who = "You" if m.type == "user" else "Assistant"
            block = f"{who}: {clip(m.content, self.config.max_message_chars)}"
            for t in m.thoughts:
                tag = "your reason" if m.type == "user" else "your reaction"
                block += f"\n[{tag}: {t.content}]"
            blocks.append(block)
        text = "\n\n".join(blocks)
        return text[-self.config.max_context_chars:] if len(text) > self.config.max_context_chars else text

    def _system(self, task: str, persona: str | None) -> str:
        p = load_prompt("simulator")
        block = p.fill("persona_block", persona=persona) if persona else ""
        return p.fill("system", task=task, persona_block=block).strip()

    async def _structured(self, messages: list[dict[str, str]], schema: type[M], sample: int) -> tuple[M | None, int, str | None]:
        cfg = GenerationConfig(
            temperature=self.config.user_temperature, max_tokens=self.config.user_max_tokens, sample_index=sample,
            seed=sample, json_schema=schema.model_json_schema(),
        )
        convo = list(messages)
        error: str | None = None
        for attempt in range(1, self.config.max_retries + 2):
            gen = await self.user_model.agenerate(convo, cfg)
            try:
                return parse_json_object(gen.text, schema), attempt, None
            except ParseError as exc:
                error = str(exc).split(" (raw output")[0]
                convo = [*convo, {"role": "assistant", "content": gen.text},
                         {"role": "user", "content": load_prompt("retry").fill("user", error=error)}]
        return None, self.config.max_retries + 1, error

    async def _assistant_reply(self, messages: Sequence[Message]) -> str:
        chat: list[dict[str, str]] = []
        if self.config.assistant_system:
            chat.append({"role": "system", "content": self.config.assistant_system})
        chat += [{"role": m.type, "content": m.content} for m in messages]
        notes = [t.content for m in messages for t in m.thoughts]
        check_no_leakage(chat, notes, [m.content for m in messages], where="assistant prompt (simulator)")
        gen = await self.assistant_model.agenerate(chat, max_tokens=self.config.assistant_max_tokens)
        return gen.text.strip()

    async def simulate(
        self, task: str, *, conversation_id: str, persona: str | None = None, sample: int = 0,
        source: Conversation | None = None,
    ) -> Conversation:
        """One conversation; `sample` makes repeated simulations of a task differ (and cache apart)."""
        p = load_prompt("simulator")
        system = self._system(task, persona)
        messages: list[Message] = []
        end_reason = "turn limit"
        failures = 0
        for turn in range(self.config.turns):
            ask = p.fill("turn", context=self._user_view(messages))
            step, _, err = await self._structured(
                [{"role": "system", "content": system}, {"role": "user", "content": ask}], UserTurn, sample
            )
            if step is None:
                failures += 1
                end_reason = f"unparseable user turn ({err})"
                break
            messages.append(Message(id=f"{conversation_id}-m{len(messages)}", type="user", content=step.message,
                                    reasons=[Thought(content=step.reason)]))
            answer = await self._assistant_reply(messages)
            messages.append(Message(id=f"{conversation_id}-m{len(messages)}", type="assistant", content=answer))
            react = p.fill("react", context=self._user_view(messages))
            reaction, _, err = await self._structured(
                [{"role": "system", "content": system}, {"role": "user", "content": react}], UserReaction, sample
            )
            if reaction is None:
                failures += 1
                end_reason = f"unparseable reaction: ended (fallback) ({err})"
                break
            messages[-1] = messages[-1].model_copy(update={"reactions": [Thought(content=reaction.reaction)]})
            if reaction.decision == "end":
                end_reason = "user ended"
                break
            if turn == self.config.turns - 1:
                end_reason = "turn limit"
        return Conversation.model_validate(dict(
            id=conversation_id,
            model_name=self.assistant_model.spec,
            task_summary=task,
            survey_answers=source.survey_answers if source is not None else None,
            domain=source.domain if source is not None else None,
            topic=source.topic if source is not None else None,
            messages=messages,
            simulation={
                "format_version": FORMAT_VERSION, "user_model": self.user_model.spec, "persona": persona,
                "end_reason": end_reason, "parse_failures": failures, "sample": sample,
                "source_id": source.id if source is not None else None, "max_turns": self.config.turns,
            },
        ))


class SimulationJob(BaseModel):
    conversation_id: str
    task: str
    persona: str | None = None
    sample: int = 0
    source_id: str | None = None


def task_of(conv: Conversation) -> str | None:
    """A real conversation's task as its user described it (task summary, else the topic)."""
    parts = [conv.task_summary, conv.task_expectation and f"Expected: {conv.task_expectation}"]
    text = " ".join(p for p in parts if p)
    if text:
        return text
    if conv.topic:
        return f"{conv.topic} ({conv.domain})" if conv.domain else conv.topic
    return None


def persona_of(conv: Conversation) -> str | None:
    """Survey answers as a one-line persona (None when the release left them out)."""
    s: Any = conv.survey_answers
    if not s:
        return None
    if isinstance(s, dict):
        return "; ".join(f"{k}: {v}" for k, v in s.items() if v not in (None, "") and k != "feedback") or None
    return "; ".join(str(x) for x in s if x) or None


def jobs_for(tasks: Sequence[str], per_task: int = 1, persona: str | None = None,
             sources: Sequence[Conversation] = ()) -> list[SimulationJob]:
    """Jobs for explicit tasks and for the tasks of real conversations (`sim-<real id>-<k>`)."""
    jobs = []
    for t_i, task in enumerate(tasks):
        for k in range(per_task):
            jobs.append(SimulationJob(conversation_id=f"sim-task{t_i}-{k}", task=task, persona=persona, sample=k))
    for conv in sources:
        found = task_of(conv)
        if found is None:
            continue
        task = found
        for k in range(per_task):
            jobs.append(SimulationJob(conversation_id=f"sim-{conv.id}-{k}", task=task,
                                      persona=persona or persona_of(conv), sample=k, source_id=conv.id))
    return jobs


async def simulate_many(
    simulator: UserSimulator, jobs: Sequence[SimulationJob], store: ItemStore, *,
    sources: Sequence[Conversation] = (), concurrency: int = 1, progress: bool | None = None,
) -> RunStats:
    """Simulate every job not yet in the output file (keyed by conversation id); write each when done."""
    by_id = {c.id: c for c in sources}

    async def work(job: SimulationJob) -> dict[str, Any]:
        conv = await simulator.simulate(job.task, conversation_id=job.conversation_id, persona=job.persona,
                                        sample=job.sample, source=by_id.get(job.source_id or ""))
        return conv.to_json_dict()

    return await run_items(list(jobs), lambda j: j.conversation_id, work, store, concurrency=concurrency,
                           desc="simulating", progress=progress)
