"""Inferred thoughts for next-message prediction: the user's reaction and reason, from the history only.

For the target message t, the model first infers (1) the user's reaction to the assistant's last answer
(message t-1) and (2) the reason behind the message the user is about to write, seeing ONLY messages
0..t-1 and no thought at all; then the prediction prompt shows these inferred notes where the oracle
conditions show the user's own. `check_no_leakage` runs on every inference prompt with everything from
message t on (texts and thoughts) and every thought of the conversation forbidden.

Methods:
- `direct`: one prompt per thought.
- `model-based`: one candidate reaction per reaction type of the taxonomy is proposed from the history;
  the AutoToM posterior (`thoughttrace.tom.api.posterior_over_hypotheses`) weighs them. No behaviour after
  t-1 may be used, so the evidence is the user's own messages so far (how this user has acted in this
  conversation) given the conversation before them; the MAP candidate is the inferred reaction. This is
  an assumption (a user's reaction is consistent with their behaviour so far), stated in the summary.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel

from thoughttrace.data import Conversation, load_taxonomy
from thoughttrace.llm import ConfigurationError, Model

from .generation import generate_text
from .leakage import check_no_leakage
from .resources import load_prompt
from .transcript import ClipConfig, render

InferMethod = Literal["direct", "model-based"]
PosteriorFn = Callable[..., Awaitable[Any]]


class InferredThoughts(BaseModel):
    """What step 1 inferred for one target message (empty strings when a step failed, with `error`)."""

    method: str
    reaction: str
    reason: str
    reaction_type: str | None = None
    candidates: list[dict[str, Any]] = []
    error: str | None = None


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


def _default_posterior() -> PosteriorFn:
    try:
        from thoughttrace.tom.api import posterior_over_hypotheses
    except ImportError as exc:
        raise ConfigurationError(f"--infer-method model-based needs thoughttrace.tom.api: {exc}; use direct") from exc
    return posterior_over_hypotheses  # type: ignore[no-any-return]


class ThoughtInferrer:
    """Step 1 of the `inferred` condition for one model."""

    def __init__(self, model: Model, method: InferMethod = "direct", *, clip: ClipConfig | None = None,
                 max_tokens: int = 80, posterior_fn: PosteriorFn | None = None) -> None:
        if method not in ("direct", "model-based"):
            raise ValueError(f"unknown inference method {method!r}; choose direct or model-based")
        self.model = model
        self.method = method
        self.clip = clip or ClipConfig()
        self.max_tokens = max_tokens
        self._posterior_fn = posterior_fn if posterior_fn is not None else (
            _default_posterior() if method == "model-based" else None)

    async def _reaction_model_based(self, conv: Conversation, index: int) -> tuple[str, str | None, list[dict[str, Any]]]:
        from .thought_inference import ThoughtItem, _as_list, proposal_prompt

        item = ThoughtItem(conversation_id=conv.id, message_id=conv.messages[index - 1].id, index=index - 1,
                           kind="reaction", condition="history", reference="", labels=[],
                           visible=list(range(index)))
        candidates: list[tuple[str, str]] = []
        for t in load_taxonomy().reactions:
            prompt = proposal_prompt(conv, item, t.label, t.definition, self.clip)
            guard(prompt, conv, index, "inferred reaction (proposal)")
            res = await generate_text(self.model, prompt, max_tokens=self.max_tokens)
            if res.text and res.text not in (c[1] for c in candidates):
                candidates.append((t.label, res.text))
        if not candidates:
            return "", None, []
        users = [m.content for m in conv.messages[:index] if m.type == "user"]
        context = render(conv.messages[:index], self.clip)
        evidence = "The user's messages so far were: " + " / ".join(users)
        guard(context + "\n" + evidence, conv, index, "inferred reaction (inverse planning)")
        hyps = [c[1] for c in candidates]
        assert self._posterior_fn is not None
        result = await self._posterior_fn(self.model, context, hyps, evidence, agent="the user",
                                          variable="reaction to the assistant's last answer")
        post = _as_list(result.posterior, hyps)
        best = int(getattr(result, "best", max(range(len(post)), key=lambda i: post[i])))
        return hyps[best], candidates[best][0], [{"type": c[0], "thought": c[1], "posterior": p}
                                                 for c, p in zip(candidates, post)]

    async def infer(self, conv: Conversation, index: int) -> InferredThoughts:
        """Reaction to message index-1 and reason for message `index`, from messages 0..index-1 only."""
        if index < 1:
            raise ValueError("an inferred thought needs at least one message of history")
        rtype: str | None = None
        cands: list[dict[str, Any]] = []
        errors = []
        if self.method == "direct":
            res = await generate_text(self.model, reaction_prompt(conv, index, self.clip), max_tokens=self.max_tokens)
            reaction = res.text
            if res.error:
                errors.append(f"reaction: {res.error}")
        else:
            reaction, rtype, cands = await self._reaction_model_based(conv, index)
            if not reaction:
                errors.append("reaction: no candidate could be proposed")
        res2 = await generate_text(self.model, reason_prompt(conv, index, reaction, self.clip),
                                   max_tokens=self.max_tokens)
        if res2.error:
            errors.append(f"reason: {res2.error}")
        return InferredThoughts(method=self.method, reaction=reaction, reason=res2.text, reaction_type=rtype,
                                candidates=cands, error="; ".join(errors) or None)
