"""Fixtures of the align tests: a synthetic conversation whose thoughts are easy to spot in prompts."""

from __future__ import annotations

import pytest

from thoughttrace.data import Conversation

REACTION = "ZEBRA-REACTION the list missed the transport costs"
REASON = "QUOKKA-REASON I want to plan a cheap trip"
NEXT_MESSAGE = "What about the cost of getting around?"


def make_conversation(reaction: str = REACTION, reason: str = REASON, label: str = "Content Relevance",
                      cid: str = "c1") -> Conversation:
    return Conversation.model_validate({
        "id": cid,
        "messages": [
            {"id": f"{cid}-m0", "type": "user", "content": "Plan a weekend in Rome.",
             "reasons": [{"content": reason, "label": "Task Motivation & Goal"}]},
            {"id": f"{cid}-m1", "type": "assistant", "content": "Day 1: Colosseum. Day 2: Vatican.",
             "reactions": [{"content": reaction, "label": label}]},
            {"id": f"{cid}-m2", "type": "user", "content": NEXT_MESSAGE,
             "reasons": [{"content": "OTTER-REASON follow up", "label": "Task Continuation"}]},
            {"id": f"{cid}-m3", "type": "assistant", "content": "Buses are cheap.",
             "reactions": [{"content": "PANDA-REACTION fine", "label": "Explicit Affirmation"}]},
        ],
    })


@pytest.fixture
def conversation() -> Conversation:
    return make_conversation()
