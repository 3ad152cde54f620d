"""Thought-guided rewrites: a rewriter model improves an assistant answer guided by the user's reaction.

Three guides share ONE rewriter and ONE prompt skeleton and differ only in the guidance slot:
`thoughts` (the user's private reaction), `messages` (the user's next message only), `none`
(a plain "improve this answer"). So any difference between the resulting preference sets comes from
the guidance, which is the comparison the release makes. `check_no_leak` is a production guard: a
`messages` or `none` prompt that contains any private thought raises `LeakageError`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from thoughttrace.data import Conversation, Message
from thoughttrace.llm import ChatMessage, Model

from .prompts import fill, template
from .records import FORMAT_VERSION, AlignError, LeakageError, append_jsonl

Guide = Literal["thoughts", "messages", "none"]
GUIDES: tuple[Guide, ...] = ("thoughts", "messages", "none")
#: reaction labels that signal the answer fell short (everything in the release's taxonomy but affirmation)
DISSATISFIED_LABELS = frozenset({"Content Relevance", "Presentation Style", "Scope Fit", "Partial Satisfaction"})
ReactionFilter = Literal["dissatisfied", "all"]


@dataclass(frozen=True)
class Target:
    """An assistant answer to rewrite, with everything any guide may need."""

    conversation: Conversation
    index: int  # position of the assistant message in conversation.messages

    @property
    def message(self) -> Message:
        return self.conversation.messages[self.index]

    @property
    def history(self) -> list[Message]:
        """Messages before the answer (ends with the user message it answers)."""
        return self.conversation.messages[: self.index]

    @property
    def next_user_message(self) -> Message | None:
        for m in self.conversation.messages[self.index + 1:]:
            if m.type == "user":
                return m
        return None

    @property
    def reaction_text(self) -> str:
        return "\n".join(r.content.strip() for r in self.message.reactions or [] if r.content.strip())


class RewriteSettings(BaseModel):
    """What shapes a rewrite prompt and its generation (all of it is recorded with each rewrite)."""

    guide: Guide = "thoughts"
    reactions: ReactionFilter = "dissatisfied"
    require_next_message: bool = Field(
        default=True,
        description="keep only answers followed by a user message, so every guide rewrites the same answers",
    )
    max_history_chars: int | None = Field(default=None, description="keep only the last N chars of history")
    max_answer_chars: int | None = Field(default=None, description="truncate the answer shown to the rewriter")
    max_tokens: int = 2048
    temperature: float = 0.0


class Rewrite(BaseModel):
    """One rewritten answer with its provenance (one JSONL row of `align rewrite`)."""

    format_version: int = FORMAT_VERSION
    conversation_id: str
    message_id: str
    guide: Guide
    rewriter: str
    reaction_labels: list[str]
    prompt: list[dict[str, str]] = Field(description="the conversation up to the user message answered")
    original: str
    rewrite: str
    prompt_sha256: str = Field(description="hash of the rewriter prompt (for audits; the prompt holds thoughts)")
    quotes_thought: bool = Field(default=False, description="the rewrite repeats a private thought verbatim")
    truncated: bool = Field(default=False, description="generation stopped at max_tokens")
    next_message: str | None = Field(default=None, description="the user's next message (degenerate-copy filter)")


def select_targets(
    conversations: Iterable[Conversation], reactions: ReactionFilter = "dissatisfied", require_next_message: bool = True
) -> list[Target]:
    """Assistant answers with a reaction (of a dissatisfied type, or any), optionally followed by a user turn."""
    if reactions not in ("dissatisfied", "all"):
        raise AlignError(f"reactions must be 'dissatisfied' or 'all', not {reactions!r}")
    targets: list[Target] = []
    for conv in conversations:
        for i, m in enumerate(conv.messages):
            if m.type != "assistant" or not m.reactions:
                continue
            if not any(r.content.strip() for r in m.reactions):
                continue
            if reactions == "dissatisfied" and not any(r.label in DISSATISFIED_LABELS for r in m.reactions):
                continue
            if not any(h.type == "user" for h in conv.messages[:i]):
                continue
            t = Target(conv, i)
            if require_next_message and t.next_user_message is None:
                continue
            targets.append(t)
    return targets


def _clip_tail(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return "[...earlier conversation omitted...]\n" + text[-limit:]


def _clip_head(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + "\n[...rest of the answer omitted...]"


def render_history(messages: Sequence[Message]) -> str:
    """The visible conversation as text: roles and contents only, never thoughts."""
    return "\n\n".join(f"{'User' if m.type == 'user' else 'Assistant'}: {m.content}" for m in messages)


def guidance(target: Target, guide: Guide) -> str:
    """The only part of the prompt that differs between guides."""
    if guide == "thoughts":
        return fill("guidance_thoughts", reaction=target.reaction_text)
    if guide == "messages":
        nxt = target.next_user_message
        if nxt is None:
            raise AlignError(f"{target.conversation.id}/{target.message.id}: the 'messages' guide needs a next user "
                             "message; select targets with require_next_message=True")
        return fill("guidance_messages", next_message=nxt.content)
    if guide == "none":
        return fill("guidance_none")
    raise AlignError(f"unknown guide {guide!r}; use one of {', '.join(GUIDES)}")


def build_prompt(target: Target, settings: RewriteSettings) -> list[ChatMessage]:
    """The rewriter's prompt: a fixed skeleton with the guide's text in its guidance slot (guarded)."""
    user = fill(
        "rewrite_user",
        history=_clip_tail(render_history(target.history), settings.max_history_chars),
        answer=_clip_head(target.message.content, settings.max_answer_chars),
        guidance=guidance(target, settings.guide),
    )
    msgs = [ChatMessage(role="system", content=template("rewrite_system")), ChatMessage(role="user", content=user)]
    check_no_leak(target, settings.guide, msgs)
    return msgs


def private_thoughts(conv: Conversation) -> list[str]:
    """Every reason and reaction text of a conversation (what no model may see unless the guide allows)."""
    return [t.content.strip() for m in conv.messages for t in m.thoughts if t.content.strip()]


def check_no_leak(target: Target, guide: Guide, prompt: Sequence[ChatMessage]) -> None:
    """Raise LeakageError when a private thought the guide may not see is in the prompt.

    A thought text that also occurs in the visible conversation or in the fixed templates (e.g. a reaction
    that reads just "good questions") is not evidence of a leak, so only the text that can ONLY have come
    from the thoughts counts. In the `thoughts` guide the target's own reactions are allowed.
    """
    allowed = {r.content.strip() for r in target.message.reactions or []} if guide == "thoughts" else set()
    visible = "\n".join(m.content for m in target.conversation.messages) + "\n" + "\n".join(
        template(n) for n in ("rewrite_system", "rewrite_user", "guidance_thoughts", "guidance_messages",
                              "guidance_none")
    )
    visible += "\n" + "\n".join(allowed)  # a thought quoted inside an allowed reaction comes with it
    text = "\n".join(m.content for m in prompt)
    for thought in private_thoughts(target.conversation):
        if thought in allowed or thought in visible:
            continue
        if thought in text:
            raise LeakageError(
                f"private thought leaked into a '{guide}' rewrite prompt "
                f"({target.conversation.id}/{target.message.id}): {thought[:60]!r}"
            )


def quotes_private_thought(target: Target, text: str) -> bool:
    """Whether a rewrite repeats a private thought that is not also visible text (such pairs are dropped:
    the chosen answer would teach the model to echo what the user never said)."""
    visible = "\n".join(m.content for m in target.conversation.messages)
    return any(len(t) >= 8 and t not in visible and t in text for t in private_thoughts(target.conversation))


def prompt_messages(target: Target) -> list[dict[str, str]]:
    """The pair's prompt: the visible conversation up to the user message the answer replies to."""
    return [{"role": "user" if m.type == "user" else "assistant", "content": m.content} for m in target.history]


def clean_rewrite(text: str) -> str:
    """Strip whitespace and a leading 'Improved answer:' style label that small models like to add."""
    out = text.strip()
    for lead in ("Improved answer:", "Improved Answer:", "Rewritten answer:", "Here is the improved answer:"):
        if out.startswith(lead):
            out = out[len(lead):].strip()
    return out


def _row_key(conversation_id: str, message_id: str, guide: str, rewriter: str) -> tuple[str, str, str, str]:
    return (conversation_id, message_id, guide, rewriter)


def read_done(out: str | Path | None) -> dict[tuple[str, str, str, str], Rewrite]:
    """Rewrites already in `out` (a line cut by a crash is dropped and redone)."""
    if out is None or not Path(out).exists():
        return {}
    done = {}
    for line in Path(out).read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        try:
            r = Rewrite.model_validate_json(line)
        except ValueError:
            continue
        done[_row_key(r.conversation_id, r.message_id, r.guide, r.rewriter)] = r
    return done


async def arewrite(
    targets: Sequence[Target], model: Model, settings: RewriteSettings, *, progress: bool = True,
    out: str | Path | None = None,
) -> list[Rewrite]:
    """Rewrite every target with the model (concurrently; cached by the model layer).

    With `out`, each rewrite is appended to that JSONL as soon as it is made, and rewrites already there
    are reused: an interrupted run resumes where it stopped.
    """
    prompts = [build_prompt(t, settings) for t in targets]  # builds and guards every prompt before any call
    done = read_done(out)
    if out is not None and done:
        # rewrite the file without a cut last line, so appends start on a fresh line
        Path(out).write_text("".join(r.model_dump_json() + "\n" for r in done.values()), encoding="utf-8")
    bar = tqdm(total=len(targets), desc=f"rewrite[{settings.guide}]", disable=None if progress else True)

    async def one(t: Target, msgs: list[ChatMessage]) -> Rewrite:
        key = _row_key(t.conversation.id, t.message.id, settings.guide, model.spec)
        if key in done:
            bar.update(1)
            return done[key]
        gen = await model.agenerate(msgs, max_tokens=settings.max_tokens, temperature=settings.temperature)
        bar.update(1)
        text = clean_rewrite(gen.text)
        nxt = t.next_user_message
        row = Rewrite(
            conversation_id=t.conversation.id,
            message_id=t.message.id,
            guide=settings.guide,
            rewriter=model.spec,
            reaction_labels=[r.label or "" for r in t.message.reactions or []],
            prompt=prompt_messages(t),
            original=t.message.content,
            rewrite=text,
            quotes_thought=quotes_private_thought(t, text),
            truncated=gen.finish_reason == "length",
            prompt_sha256=hashlib.sha256("\n".join(m.content for m in msgs).encode()).hexdigest(),
            next_message=nxt.content if nxt is not None else None,
        )
        if out is not None:
            append_jsonl(row, out)
        return row

    try:
        return list(await asyncio.gather(*(one(t, p) for t, p in zip(targets, prompts))))
    finally:
        bar.close()


def rewrite_conversations(
    conversations: Iterable[Conversation], model: Model, settings: RewriteSettings, *,
    limit: int | None = None, progress: bool = True, out: str | Path | None = None,
) -> list[Rewrite]:
    """Select targets and rewrite them (sync entry point for the CLI and scripts)."""
    need_next = settings.require_next_message or settings.guide == "messages"  # that guide IS the next message
    targets = select_targets(conversations, settings.reactions, need_next)
    if limit is not None:
        targets = targets[:limit]
    return model.run(arewrite(targets, model, settings, progress=progress, out=out))
