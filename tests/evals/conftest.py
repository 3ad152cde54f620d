"""Shared helpers for the evals tests: a scripted model that plays every role, a bag-of-words embedder,
and a synthetic conversation whose texts are all distinct (so a leak is unambiguous)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from thoughttrace.data import Conversation
from thoughttrace.evals import find_leaks
from thoughttrace.llm import get_model


class BowEmbedder:
    """Cosine of word-count vectors: deterministic and instant, same API as the real Embedder."""

    name = "bow"

    def cosine(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        out = []
        for x, y in zip(a, b):
            cx, cy = Counter(x.lower().split()), Counter(y.lower().split())
            dot = sum(cx[w] * cy[w] for w in cx)
            norm = math.sqrt(sum(v * v for v in cx.values())) * math.sqrt(sum(v * v for v in cy.values()))
            out.append(dot / norm if norm else 0.0)
        return np.array(out)


def role_of(messages: list[Any]) -> str:
    text = "\n".join(m.content for m in messages)
    if "Score: N" in text:
        return "judge"
    if "Suppose the user's private note about it is of the type" in text:
        return "propose"
    if "Why did the user send this last message?" in text:
        return "infer_reason"
    if "The user is about to write their next message" in text:
        return "infer_upcoming_reason"
    if "What did the user think of the assistant's last answer?" in text:
        return "infer_reaction"
    if "Write the user's next message" in text:
        return "next_message"
    return "other"


def default_fn(messages: list[Any], cfg: Any) -> str:
    role = role_of(messages)
    text = "\n".join(m.content for m in messages)
    if role == "judge":
        hi = 100 if "from 0 to 100" in text else 5
        return f"Fairly close.\nScore: {hi // 2 + 1}"
    if role == "propose":
        label = re.search(r'of the type "([^"]+)"', text)
        return f"Note: I guess this is about {label.group(1) if label else 'something'}."
    if role == "infer_reason":
        return "I wanted the assistant to help me with my task."
    if role == "infer_reaction":
        return "\"The answer was useful to me.\""
    if role == "infer_upcoming_reason":
        return "I want to go one step further with this."
    if role == "next_message":
        if "private note on why" in text:
            return "A prediction that saw the reason."
        if "private note about the assistant's last answer" in text:
            return "A prediction that saw the reaction."
        return "A prediction from history only."
    return "An assistant answer."


@pytest.fixture
def scripted():
    """Factory: a scripted model with the default role-playing function (override with fn=...)."""

    def make(fn: Any = default_fn, cache: Any = True, name: str = "scripted") -> Any:
        return get_model(f"scripted:{name}", cache=cache, fn=fn)

    return make


@pytest.fixture
def bow() -> BowEmbedder:
    return BowEmbedder()


def synthetic_conversation(cid: str = "synth-1", n_pairs: int = 3) -> Conversation:
    """User/assistant pairs; every message and thought has its own distinctive words."""
    messages = []
    for k in range(n_pairs):
        messages.append({
            "id": f"{cid}-u{k}", "type": "user", "content": f"user message number {k} about zebra{k} topics in {cid}",
            "reasons": [{"content": f"secret reason {k} mentioning walrus{k} in {cid}", "label": "Task Continuation" if k else
                         "Task Motivation & Goal"}],
        })
        messages.append({
            "id": f"{cid}-a{k}", "type": "assistant", "content": f"assistant answer {k} on giraffe{k} facts in {cid}",
            "reactions": [{"content": f"private reaction {k} about pelican{k} in {cid}", "label": "Explicit Affirmation"}],
        })
    return Conversation.model_validate({"id": cid, "domain": "Technology", "topic": "synthetic", "messages": messages})


@pytest.fixture
def synth() -> list[Conversation]:
    return [synthetic_conversation("synth-1"), synthetic_conversation("synth-2", 2)]


def all_thoughts(conversations: Sequence[Conversation]) -> list[str]:
    return [t.content for c in conversations for m in c.messages for t in m.thoughts]


def all_messages(conversations: Sequence[Conversation]) -> list[str]:
    return [m.content for c in conversations for m in c.messages]


def prompt_text(request: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in request["messages"])


def role_of_request(req: dict[str, Any]) -> str:
    from types import SimpleNamespace

    return role_of([SimpleNamespace(**m) for m in req["messages"]])


@pytest.fixture
def h() -> Any:
    """The helpers above (test modules cannot import conftest under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(all_messages=all_messages, all_thoughts=all_thoughts, prompt_text=prompt_text,
                           role_of=role_of, role_of_request=role_of_request, default_fn=default_fn,
                           find_leaks=find_leaks, synthetic_conversation=synthetic_conversation)
