"""Methods behind one interface: `await method.solve(model, story, question, choices) -> Answer`.

- `direct`: the answer letter's next-token probability, debiased for position by asking with every
  cyclic rotation of the options (up to 4 choices; given and reversed order beyond) and averaging each
  choice's probability; fallbacks: continuation scores of the
  letters, else a generated letter parsed strictly.
- `cot`: reason, then "Answer: <letter>" parsed strictly (one retry with the error fed back); an
  unparsable answer gives the uniform posterior and an error note.
- `simtom`: perspective taking (SimToM, Wilf et al. 2023): keep only the sentences the queried agent
  perceived (the same validated perception step AutoToM uses), then answer `direct`ly on that story.
- `autotom`: autotom.py.
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

from thoughttrace.llm import Model

from .analysis import heuristic_parse
from .autotom import AutoToM, AutoToMConfig
from .items import letter, letter_mass, options_text
from .prompts import render
from .result import Answer
from .timeline import perceive, split_sentences, visible_story
from .usage import TrackedModel, track

#: up to this many choices, `direct` asks every cyclic rotation of the options; beyond, given + reversed
MAX_ROTATED = 4
_ANSWER = re.compile(r"answer\s*(?:is)?\s*[:\-]?\s*\(?([A-Z])\)?(?![a-z])", re.I)


class Method(Protocol):
    name: str

    async def solve(self, model: Model | TrackedModel, story: str, question: str, choices: list[str]) -> Answer: ...


async def letter_distribution(tm: TrackedModel, story: str, question: str, choices: list[str]) -> tuple[list[float], dict[str, Any]]:
    """P(choice) from the answer letter, averaged over several orders of the options (position debiasing)."""
    n = len(choices)
    if n <= MAX_ROTATED:  # every choice in every position: cancels any position bias, middle ones too
        orders = [[(start + i) % n for i in range(n)] for start in range(n)]
    else:  # many choices (e.g. 15 containers): the given and the reversed order
        orders = [list(range(n)), list(reversed(range(n)))]
    trace: dict[str, Any] = {"orders": []}
    total = [0.0] * n
    informative = 0
    for order in orders:
        shown = [choices[i] for i in order]
        prompt = render("mc_question", story=story, question=question, options=options_text(shown))
        messages = [{"role": "user", "content": prompt}]
        if tm.supports("next_token_logprobs"):
            res = await tm.anext_token_logprobs(messages, k=20)
            mass = letter_mass([(t.token, t.logprob) for t in res.top], n)
        elif tm.supports("score"):
            scored = await tm.ascore(prompt + "\nAnswer:", [f" {letter(i)}" for i in range(n)])
            mass = [math.exp(x) for x in scored.logprobs]
        else:
            out = await tm.agenerate(messages, max_tokens=3)
            m = re.match(r"\s*\(?([A-Z])\b", out.text)
            mass = [0.0] * n
            if m and ord(m.group(1)) - 65 < n:
                mass[ord(m.group(1)) - 65] = 1.0
        z = sum(mass)
        trace["orders"].append({"order": order, "letter_mass": mass})
        if z <= 0:
            continue
        informative += 1
        for pos, i in enumerate(order):
            total[i] += mass[pos] / z
    if informative == 0:
        trace["note"] = "no option letter among the top tokens; uniform"
        return [1.0 / n] * n, trace
    return [x / informative for x in total], trace


class Direct:
    name = "direct"

    async def solve(self, model: Model | TrackedModel, story: str, question: str, choices: list[str]) -> Answer:
        tm = track(model)
        post, trace = await letter_distribution(tm, story, question, choices)
        # the posterior is over "which option answers the question" (also for LEAST-likely questions): argmax
        return Answer.from_posterior(self.name, choices, post, trace=trace, usage=tm.finish())


class CoT:
    name = "cot"

    def __init__(self, max_tokens: int = 320) -> None:
        self.max_tokens = max_tokens

    async def solve(self, model: Model | TrackedModel, story: str, question: str, choices: list[str]) -> Answer:
        tm = track(model)
        n = len(choices)
        messages = [{"role": "user", "content": render("cot", story=story, question=question, options=options_text(choices))}]
        trace: dict[str, Any] = {"attempts": []}
        for attempt in range(2):
            out = await tm.agenerate(messages, max_tokens=self.max_tokens, temperature=0.0)
            matches = [m.group(1).upper() for m in _ANSWER.finditer(out.text)]
            trace["attempts"].append(out.text)
            trace["reasoning"] = out.text
            if matches and ord(matches[-1]) - 65 < n:
                post = [0.0] * n
                post[ord(matches[-1]) - 65] = 1.0
                return Answer.from_posterior(self.name, choices, post, least=False, trace=trace, usage=tm.finish())
            if attempt == 0:
                messages = [*messages, {"role": "assistant", "content": out.text},
                            {"role": "user", "content": f"Give only the final line: 'Answer: ' and one letter from A to {letter(n - 1)}."}]
        return Answer.from_posterior(self.name, choices, [1.0] * n, trace=trace, usage=tm.finish(),
                                     error="cot: no 'Answer: <letter>' in the reply; uniform posterior")


class SimToM:
    name = "simtom"

    async def solve(self, model: Model | TrackedModel, story: str, question: str, choices: list[str]) -> Answer:
        tm = track(model)
        parse = heuristic_parse(story, question, choices)
        sentences = split_sentences(story) or [story]
        trace: dict[str, Any] = {"perspectives": []}
        visible = sentences
        for agent in parse.agents:
            per = await perceive(tm, visible, agent)
            visible = visible_story(visible, per) or visible
            trace["perspectives"].append({"agent": agent, "visible": visible, "trace": per.trace})
        filtered = "\n".join(visible)
        post, trace["answer"] = await letter_distribution(tm, filtered, question, choices)
        return Answer.from_posterior(self.name, choices, post, trace=trace, usage=tm.finish())


METHODS = ("autotom", "direct", "cot", "simtom")


def get_method(name: str, **options: Any) -> Method:
    """A method by name; `options` go to AutoToMConfig for autotom."""
    if name == "autotom":
        return AutoToM(AutoToMConfig(**options))
    if options:
        raise ValueError(f"method '{name}' takes no options")
    if name == "direct":
        return Direct()
    if name == "cot":
        return CoT()
    if name == "simtom":
        return SimToM()
    raise ValueError(f"unknown method '{name}'; choose one of {', '.join(METHODS)}")


async def solve_safely(method: Method, model: Model | TrackedModel, story: str, question: str,
                       choices: list[str]) -> Answer:
    """Never raises for one item: a failure returns the uniform posterior with the error recorded.

    Deliberately broad: one question must not end a long run, and the error's type and text are kept in
    the answer (and counted wrong by the harness), so nothing is hidden.
    """
    tm = track(model)
    try:
        return await method.solve(tm, story, question, choices)
    except Exception as exc:  # noqa: BLE001
        n = len(choices)
        return Answer.from_posterior(method.name, choices, [1.0] * n, usage=tm.finish(),
                                     error=f"{type(exc).__name__}: {exc}")


async def asolve(model: Model, story: str, question: str, choices: list[str], method: str = "autotom",
                 **options: Any) -> Answer:
    if len(choices) < 2:
        raise ValueError("give at least two choices")
    return await solve_safely(get_method(method, **options), model, story, question, choices)


def solve(model: Model, story: str, question: str, choices: list[str], method: str = "autotom", **options: Any) -> Answer:
    """Sync entry point (runs on the model's private loop)."""
    return model.run(asolve(model, story, question, choices, method, **options))
