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


def _p_likely(text: str, value: str) -> float:
    """P(Likely) of one statement: keep a previous belief (0.9); else follow what was perceived about the
    ball; else 0.5."""
    place = "basket" if "basket" in value else "box"
    prev = re.search(r"believed before: (.*)", text)
    perceived = re.search(r"perceived: (.*)", text)
    if prev:
        return 0.9 if place in prev.group(1) else 0.1
    if perceived and "ball is in the basket" in perceived.group(1):
        return 0.9 if place == "basket" else 0.1
    return 0.5


def likelihood_logprobs(messages: Any) -> dict[str, float]:
    """Likely / Unlikely for a statement; for a row request (options A., B., ...) each letter's share of
    the options' P(Likely), so a row gives the same factor values as the statements one by one, normalised."""
    text = _content(messages)
    statement = re.search(r"Statement \([^)]*\): (.*)", text)
    if statement is not None:
        p = _p_likely(text, statement.group(1))
        return {"Likely": p, "Unlikely": 1 - p}
    if re.search(r"^Question \(", text, re.M):
        options = re.findall(r"^([A-Z])\. (.*)$", text, re.M)
        ps = {letter: _p_likely(text, value) for letter, value in options}
        return {letter: p / sum(ps.values()) for letter, p in ps.items()}
    return {"A": 0.6, "B": 0.4}  # a multiple-choice question (direct, simtom)


def competent_model(agents: list[str] | None = None, perception: dict | None = None, **kw: Any):
    agents = agents or ["Sally"]
    perception = perception or {"Sally": {"observed": [1, 2, 3, 4], "actions": [1, 4]},
                                "Anne": {"observed": [1, 2, 3, 4, 5], "actions": [2, 5]}}
    return get_model("scripted", cache=False, fn=fn(agents, perception, **kw), logprobs=likelihood_logprobs)
