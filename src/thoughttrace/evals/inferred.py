"""Inferred thoughts for next-message prediction: the user's reaction and reason, from the history only.

For the target message t, the model first infers (1) the user's reaction to the assistant's last answer
(message t-1) and (2) the reason behind the message the user is about to write, seeing ONLY messages
0..t-1 and no thought at all; then the prediction prompt shows these inferred notes where the oracle
conditions show the user's own. `check_no_leakage` runs on every inference prompt with everything from
message t on (texts and thoughts) and every thought of the conversation forbidden.

Methods:
- `direct`: one prompt per thought.
- `model-based`: one candidate reaction per reaction type of the taxonomy is proposed from the history
  (`proposal="structured"`: ONE call returning a JSON object keyed by the type names, validated and fed back
  once, then per-type calls only for the types still missing; `proposal="per-type"`: one call per type); the
  AutoToM posterior (`thoughttrace.tom.api.posterior_over_hypotheses`) weighs them. No behaviour after
  t-1 may be used, so the evidence is the user's own messages so far (how this user has acted in this
  conversation) given the conversation before them; the MAP candidate is the inferred reaction. This is
  an assumption (a user's reaction is consistent with their behaviour so far), stated in the summary.
  `posterior_mode="row"` (default) asks ONE distribution over the candidates in both orders (2 requests),
  so the candidates compete in one answer; `"statements"` scores each alone as a Likely/Unlikely statement
  (5 requests), whose independent scores of similar size gave near-uniform posteriors (best of 5: 0.23-0.37).
  With the 0.5B model rows are about as flat (docs/evals.md gives the measured figures): what is left after
  the two orders cancel the taste for a letter is the little the model knows about the reaction here.

Cost per inferred message is bounded whatever the number of turns: every prompt shows the conversation
clipped by `ClipConfig` (and the evidence by the same limits), and the number of requests has a fixed
ceiling (`max_requests`, at most 19 for the 5 reaction types; typically 4: 1 proposal, 2 row orders, 1
reason). Each `InferredThoughts` records the requests and tokens it spent (`usage`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal, cast

from pydantic import BaseModel

from thoughttrace.data import Conversation, load_taxonomy
from thoughttrace.llm import ConfigurationError, LLMError, Model
from thoughttrace.tom.usage import QuestionUsage, TrackedModel

from .generation import clean_text, generate_text
from .leakage import check_no_leakage
from .resources import load_prompt
from .transcript import ClipConfig, clip, keep_recent, render

InferMethod = Literal["direct", "model-based"]
PosteriorMode = Literal["row", "statements"]
ProposalMode = Literal["structured", "per-type"]
PosteriorFn = Callable[..., Awaitable[Any]]
#: a note longer than this (characters) is not one short sentence; the JSON schema and the check both bound it,
#: so that the structured reply of every type fits its token budget (NOTE_TOKENS per note)
MAX_NOTE_CHARS = 200
NOTE_TOKENS = 60


class InferredThoughts(BaseModel):
    """What step 1 inferred for one target message (empty strings when a step failed, with `error`).

    `posterior_mode` is how the candidates were weighed (`row` or `statements`, as the posterior reports it),
    `proposal` how they were proposed (mode, attempts, the types filled one by one), `usage` the requests and
    tokens this message's inference spent (cache hits count as requests: their tokens are the cost)."""

    method: str
    reaction: str
    reason: str
    reaction_type: str | None = None
    candidates: list[dict[str, Any]] = []
    posterior_mode: str | None = None
    proposal: dict[str, Any] | None = None
    usage: dict[str, int] = {}
    error: str | None = None


def usage_report(u: QuestionUsage) -> dict[str, int]:
    """One inferred message's requests and tokens (cache hits count as requests: their tokens are the cost)."""
    return {"requests": u.requests, "cache_hits": u.cache_hits, "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens, "tokens": u.tokens, "max_prompt_tokens": u.max_prompt_tokens,
            **{f"requests_{k}": v for k, v in sorted(u.by_kind.items())}}


def forbidden_for(conv: Conversation, index: int) -> list[str]:
    """Everything the inference for target `index` must not see: messages index.. and every thought."""
    later = [m.content for m in conv.messages[index:] if m.content.strip()]
    thoughts = [t.content for m in conv.messages for t in m.thoughts if t.content and t.content.strip()]
    return later + thoughts


def allowed_for(conv: Conversation, index: int) -> list[str]:
    """The history the inference may show: the messages before the target (never their thoughts)."""
    return [m.content for m in conv.messages[:index]]


def guard(prompt: Any, conv: Conversation, index: int, where: str) -> None:
    check_no_leakage(prompt, forbidden_for(conv, index), allowed_for(conv, index), where=where)


def reaction_prompt(conv: Conversation, index: int, clip: ClipConfig) -> list[dict[str, str]]:
    p = load_prompt("infer_reaction")
    user = p.fill("user", context=render(conv.messages[:index], clip), evidence_block="")
    prompt = [{"role": "system", "content": p.parts["system"].strip()}, {"role": "user", "content": user.strip()}]
    guard(prompt, conv, index, "inferred reaction")
    return prompt


def reason_prompt(conv: Conversation, index: int, reaction: str, clip: ClipConfig) -> list[dict[str, str]]:
    p = load_prompt("infer_upcoming_reason")
    user = p.fill("user", context=render(conv.messages[:index], clip), reaction=reaction or "unknown")
    prompt = [{"role": "system", "content": p.parts["system"].strip()}, {"role": "user", "content": user.strip()}]
    # the inferred reaction is model output made from the history; a coincidence with a real thought is not a leak
    check_no_leakage(prompt, forbidden_for(conv, index), [*allowed_for(conv, index), reaction],
                     where="inferred reason")
    return prompt


def evidence_text(conv: Conversation, index: int, clip_config: ClipConfig) -> str:
    """The user's own messages before `index`, each clipped, the most recent kept within `max_chars`: the
    evidence of the inverse planning, bounded like the context so a long conversation costs no more."""
    users = [clip(m.content, clip_config.max_message_chars) for m in conv.messages[:index] if m.type == "user"]
    kept, omitted = keep_recent(users, clip_config.max_chars, len(" / "))
    head = f"[... {omitted} earlier messages omitted ...] / " if omitted else ""
    return "The user's messages so far were: " + head + " / ".join(kept)


def proposals_prompt(conv: Conversation, index: int, types: list[tuple[str, str]],
                     clip_config: ClipConfig) -> list[dict[str, str]]:
    """ONE prompt asking for a note of every reaction type, as a JSON object keyed by the type names."""
    p = load_prompt("propose_reactions")
    listing = "\n".join(f'- "{label}": {definition}' for label, definition in types)
    example = json.dumps({label: "..." for label, _ in types})
    user = p.fill("user", context=render(conv.messages[:index], clip_config), types=listing, example=example)
    prompt = [{"role": "system", "content": p.parts["system"].strip()}, {"role": "user", "content": user.strip()}]
    guard(prompt, conv, index, "inferred reaction (proposal)")
    return prompt


def proposals_schema(labels: list[str]) -> dict[str, Any]:
    """What constrained decoding enforces: every type name a key, a non-empty bounded string each."""
    return {"type": "object", "required": list(labels), "additionalProperties": False,
            "properties": {lab: {"type": "string", "minLength": 1, "maxLength": MAX_NOTE_CHARS} for lab in labels}}


def _norm(text: str) -> str:
    return " ".join("".join(ch.lower() if ch.isalnum() else " " for ch in text).split())


def parse_proposals(text: str, labels: list[str], definitions: dict[str, str] | None = None
                    ) -> tuple[dict[str, str], str | None]:
    """The valid notes of a structured reply, by type, and the first problem found (None when all are valid).

    A note is a hypothesis only if it says something of its own: one that is empty, too long, a copy of its
    type's name or definition, or the same as another type's note is refused (the hypotheses must differ, or
    the posterior has nothing to weigh). Valid entries are kept even when others fail, so that only the
    failing types are proposed again."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0:
        return {}, "no JSON object found"
    if end <= start:
        return {}, "the JSON object was cut off before its closing brace; keep every note to one short sentence"
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        return {}, f"not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(data, dict):
        return {}, "the JSON is not an object"
    notes: dict[str, str] = {}
    seen: dict[str, str] = {}
    problems: list[str] = []
    for lab in labels:
        value = data.get(lab)
        note = clean_text(value) if isinstance(value, str) else ""
        key = _norm(note)
        echoes = {_norm(lab), _norm((definitions or {}).get(lab, ""))} - {""}
        if not key:
            problems.append(f"missing or empty note for '{lab}'")
        elif len(note) > MAX_NOTE_CHARS:
            problems.append(f"the note for '{lab}' is longer than {MAX_NOTE_CHARS} characters")
        elif key in echoes:
            problems.append(f"the note for '{lab}' repeats the type's name or definition; write what this user thought")
        elif key in seen:
            problems.append(f"the notes for '{seen[key]}' and '{lab}' are the same; write a different note for each type")
        else:
            notes[lab] = note
            seen[key] = lab
    extra = [k for k in data if k not in labels]
    if extra:
        problems.append(f"unknown key '{extra[0]}' (use exactly the type names)")
    return notes, (problems[0] if problems else None)


def _default_posterior() -> PosteriorFn:
    try:
        from thoughttrace.tom.api import posterior_over_hypotheses
    except ImportError as exc:
        raise ConfigurationError(f"--infer-method model-based needs thoughttrace.tom.api: {exc}; use direct") from exc
    return posterior_over_hypotheses  # type: ignore[no-any-return]


class ThoughtInferrer:
    """Step 1 of the `inferred` condition for one model."""

    def __init__(self, model: Model, method: InferMethod = "direct", *, clip: ClipConfig | None = None,
                 max_tokens: int = 80, posterior_fn: PosteriorFn | None = None,
                 posterior_mode: PosteriorMode = "row", proposal: ProposalMode = "structured") -> None:
        if method not in ("direct", "model-based"):
            raise ValueError(f"unknown inference method {method!r}; choose direct or model-based")
        if posterior_mode not in ("row", "statements"):
            raise ValueError(f"unknown posterior mode {posterior_mode!r}; choose row or statements")
        if proposal not in ("structured", "per-type"):
            raise ValueError(f"unknown proposal mode {proposal!r}; choose structured or per-type")
        self.model = model
        self.method = method
        self.clip = clip or ClipConfig()
        self.max_tokens = max_tokens
        self.posterior_mode = posterior_mode
        self.proposal = proposal
        self._posterior_fn = posterior_fn if posterior_fn is not None else (
            _default_posterior() if method == "model-based" else None)

    @property
    def max_requests(self) -> int:
        """The ceiling on model requests per inferred message, whatever the conversation's length: proposals
        (structured: 2 attempts + one per type as fallback; per-type: one per type, no retry), the posterior
        (row: 2; statements: one per type, two where a generate-only backend states a number and is asked
        again) and the reason (2 attempts). Direct: 2 + 2."""
        if self.method == "direct":
            return 4
        n = len(load_taxonomy().reactions)
        proposals = 2 + n if self.proposal == "structured" else n
        rows = self.model.supports("next_token_logprobs") or self.model.supports("score")
        # statements: one request each, two where a generate-only backend is asked for a number again
        per_statement = n if rows else 2 * n
        posterior = 2 if self.posterior_mode == "row" and rows else per_statement
        return proposals + posterior + 2

    async def _propose(self, model: Model, conv: Conversation, index: int
                       ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        from .thought_inference import ThoughtItem, proposal_prompt

        types = [(t.label, t.definition) for t in load_taxonomy().reactions]
        labels = [lab for lab, _ in types]
        notes: dict[str, str] = {}
        trace: dict[str, Any] = {"mode": self.proposal, "attempts": 0}
        if self.proposal == "structured":
            messages = proposals_prompt(conv, index, types, self.clip)
            retry = load_prompt("propose_reactions")
            definitions = dict(types)
            errors: list[str] = []
            for attempt in range(2):
                try:
                    out = await model.agenerate(messages, max_tokens=NOTE_TOKENS * len(types) + 40,
                                                temperature=0.0, json_schema=proposals_schema(labels))
                except LLMError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    break
                trace["attempts"] = attempt + 1
                valid, problem = parse_proposals(out.text, labels, definitions)
                taken = {_norm(v) for v in notes.values()}
                notes.update({k: v for k, v in valid.items() if k not in notes and _norm(v) not in taken})
                if problem is None or len(notes) == len(labels):
                    break
                errors.append(problem)
                if attempt == 0:
                    messages = [*messages, {"role": "assistant", "content": out.text},
                                {"role": "user", "content": retry.fill("retry", error=problem,
                                                                       labels=", ".join(labels)).strip()}]
        item = ThoughtItem(conversation_id=conv.id, message_id=conv.messages[index - 1].id, index=index - 1,
                           kind="reaction", condition="history", reference="", labels=[],
                           visible=list(range(index)))
        missing = [(lab, d) for lab, d in types if lab not in notes]
        if self.proposal == "structured":
            if errors:
                trace["errors"] = errors
            trace["per_type_fallback"] = [lab for lab, _ in missing]
        for label, definition in missing:
            prompt = proposal_prompt(conv, item, label, definition, self.clip)
            guard(prompt, conv, index, "inferred reaction (proposal)")
            res = await generate_text(model, prompt, max_tokens=self.max_tokens, max_retries=0)
            if res.text:
                notes[label] = res.text
        candidates: list[tuple[str, str]] = []
        for label in labels:  # the taxonomy's order, one candidate per distinct note (case and punctuation aside)
            if label in notes and _norm(notes[label]) not in {_norm(c[1]) for c in candidates}:
                candidates.append((label, notes[label]))
        return candidates, trace

    async def _reaction_model_based(self, model: Model, conv: Conversation, index: int
                                    ) -> tuple[str, str | None, list[dict[str, Any]], str | None, dict[str, Any]]:
        from .thought_inference import _as_list

        candidates, trace = await self._propose(model, conv, index)
        if not candidates:
            return "", None, [], None, trace
        context = render(conv.messages[:index], self.clip)
        evidence = evidence_text(conv, index, self.clip)
        guard(context + "\n" + evidence, conv, index, "inferred reaction (inverse planning)")
        hyps = [c[1] for c in candidates]
        assert self._posterior_fn is not None
        result = await self._posterior_fn(model, context, hyps, evidence, agent="the user",
                                          variable="reaction to the assistant's last answer",
                                          mode=self.posterior_mode)
        post = _as_list(result.posterior, hyps)
        best = int(getattr(result, "best", max(range(len(post)), key=lambda i: post[i])))
        used = getattr(result, "mode", None)
        note = getattr(result, "note", None)
        if isinstance(note, str) and note:
            trace["posterior_note"] = note
        return hyps[best], candidates[best][0], [{"type": c[0], "thought": c[1], "posterior": p}
                                                 for c, p in zip(candidates, post)], \
            used if isinstance(used, str) else self.posterior_mode, trace

    async def infer(self, conv: Conversation, index: int) -> InferredThoughts:
        """Reaction to message index-1 and reason for message `index`, from messages 0..index-1 only."""
        if index < 1:
            raise ValueError("an inferred thought needs at least one message of history")
        counter = TrackedModel(self.model)
        model = cast(Model, counter)
        rtype: str | None = None
        cands: list[dict[str, Any]] = []
        mode: str | None = None
        proposal: dict[str, Any] | None = None
        errors = []
        if self.method == "direct":
            res = await generate_text(model, reaction_prompt(conv, index, self.clip), max_tokens=self.max_tokens)
            reaction = res.text
            if res.error:
                errors.append(f"reaction: {res.error}")
        else:
            reaction, rtype, cands, mode, proposal = await self._reaction_model_based(model, conv, index)
            if not reaction:
                errors.append("reaction: no candidate could be proposed")
        res2 = await generate_text(model, reason_prompt(conv, index, reaction, self.clip),
                                   max_tokens=self.max_tokens)
        if res2.error:
            errors.append(f"reason: {res2.error}")
        return InferredThoughts(method=self.method, reaction=reaction, reason=res2.text, reaction_type=rtype,
                                candidates=cands, posterior_mode=mode, proposal=proposal, usage=usage_report(counter.usage),
                                error="; ".join(errors) or None)
