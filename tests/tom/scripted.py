"""A scripted 'competent' model for the ToM tests: valid structured outputs and a likelihood table."""

from __future__ import annotations

import json
import re
from typing import Any

from thoughttrace.llm import get_model

STORY = ("1 Sally entered the kitchen.\n2 Anne entered the kitchen.\n3 The ball is in the basket.\n"
         "4 Sally exited the kitchen.\n5 Anne moved the ball to the box.")
CHOICES = ["basket", "box"]
STATEMENTS = ["Sally thinks the ball is in the basket.", "Sally thinks the ball is in the box."]


def _content(messages: Any) -> str:
    last = messages[-1]
    return last["content"] if isinstance(last, dict) else last.content


def fn(agents: list[str], perception: dict[str, dict[str, list[int]]], statements: list[str] = STATEMENTS,
       least: bool = False):
    def respond(messages: Any, cfg: Any) -> str:
        text = _content(messages)
        first = messages[0]["content"] if isinstance(messages[0], dict) else messages[0].content
        if "Analyse the question" in first:
            return json.dumps({"agents": agents, "variable": "belief", "known": [], "statements": statements,
                               "least_likely": least, "model": ["State", "Observation", "Belief"]})
        match = re.search(r"Consider (\w+)\.", first)
        if match:
            return json.dumps(perception[match.group(1)])
        if "hypotheses" in first:
            return json.dumps({"hypotheses": ["h1", "h2"]})
        return text[:1]
    return respond


def likelihood_logprobs(messages: Any) -> dict[str, float]:
    """P(Likely): keep a previous belief (0.9); else follow what was perceived about the ball; else 0.5."""
    text = _content(messages)
    statement = re.search(r"Statement \([^)]*\): (.*)", text)
    if statement is None:  # a multiple-choice question (direct, simtom)
        return {"A": 0.6, "B": 0.4}
    value = statement.group(1)
    place = "basket" if "basket" in value else "box"
    prev = re.search(r"believed before: (.*)", text)
    perceived = re.search(r"perceived: (.*)", text)
    if prev:
        p = 0.9 if place in prev.group(1) else 0.1
    elif perceived and "ball is in the basket" in perceived.group(1):
        p = 0.9 if place == "basket" else 0.1
    else:
        p = 0.5
    return {"Likely": p, "Unlikely": 1 - p}


def competent_model(agents: list[str] | None = None, perception: dict | None = None, **kw: Any):
    agents = agents or ["Sally"]
    perception = perception or {"Sally": {"observed": [1, 2, 3, 4], "actions": [1, 4]},
                                "Anne": {"observed": [1, 2, 3, 4, 5], "actions": [2, 5]}}
    return get_model("scripted", cache=False, fn=fn(agents, perception, **kw), logprobs=likelihood_logprobs)
