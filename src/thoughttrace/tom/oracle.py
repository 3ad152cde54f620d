"""The engine's cap: AutoToM with a perfect likelihood, so that only the deterministic layer can lose an answer.

`OracleLikelihood` knows the gold choice. A likelihood request is judged by the first text in it that is about
exactly one choice, the request's value first and then its facts (parents) in order: about the gold choice,
P(Likely) = `high` (also when it is about a group of choices holding the gold one); about other choices only, `low`; about none, 0.5 (it tells nothing apart). For a question asking which
statement is LEAST likely, the other way round (the gold statement is the unlikely one). So the gold answer's
hypotheses are likely and the rest are not, whatever the engine builds (a belief statement, a state hypothesis,
an act given a goal). No model is called and the question parse and perception use their deterministic
fallbacks (`AutoToMConfig(llm_steps=False)`), so an item below 100 % is lost by a rule, a parse fallback or the
model space, never by a model: `cap` runs a set of items and says which.

What a text is "about": each choice's distinctive words (`oracle_words` of the choice minus those of
every other choice); a text is about choice i when it holds at least half of i's distinctive words and a larger
share of them than of any other choice's. A choice with no distinctive word of its own (a subset of another)
is about a text that holds none of the others' distinctive words but all of its own words.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .items import ToMItem
from .likelihood import LikelihoodRequest
from .wording import terms

_STOP = frozenset({"a", "an", "the", "is", "are", "was", "were", "at", "in", "on", "of", "to", "and", "or", "that", "this",
                   "it", "be", "by", "for", "with", "as", "not"})


def oracle_words(text: str) -> frozenset[str]:
    """The oracle's words of a text: content words (`wording.terms`, names like red_box whole and split) plus short
    tokens and numbers ("3 AM" against "5 AM", which `terms` would not tell apart), minus articles and the like."""
    low = text.lower()
    short = {t for t in re.findall(r"[a-z0-9]+", low.replace("_", " ")) if t not in _STOP}
    return terms(text.replace("_", " ")) | terms(text) | frozenset(short)

FORMAT_VERSION = 1


class OracleLikelihood:
    """A perfect likelihood for one item: high for what the gold choice says, low for the other choices."""

    supports_choice = False

    def __init__(self, choices: Sequence[str], gold: int, *, high: float = 0.9, low: float = 0.1,
                 least: bool = False) -> None:
        if not 0 <= gold < len(choices):
            raise ValueError(f"gold index {gold} is out of range for {len(choices)} choices")
        self.gold, self.high, self.low = gold, high, low
        if least:  # the gold statement of a "which is LEAST likely" question is the one the world makes unlikely
            self.high, self.low = low, high
        self.words = [oracle_words(c) for c in choices]
        self.own = [w - frozenset().union(*(o for j, o in enumerate(self.words) if j != i))
                    for i, w in enumerate(self.words)]
        self.calls: list[LikelihoodRequest] = []

    def about_all(self, text: str) -> set[int]:
        """The choices `text` is most about (empty: about none); a group of choices ("one of: a, b") is about each."""
        have = oracle_words(text)
        shares: list[float] = []
        for own, words in zip(self.own, self.words):
            if own:
                shares.append(len(own & have) / len(own))
            else:  # no word of its own: about it only when it holds all of its words and nobody else's
                others = any(o & have for o in self.own if o)
                shares.append(1.0 if words and words <= have and not others else 0.0)
        best = max(shares)
        return set() if best < 0.5 else {i for i, x in enumerate(shares) if x == best}

    def about(self, text: str) -> int | None:
        """The one choice `text` is about, or None (about none, or as much about two)."""
        got = self.about_all(text)
        return next(iter(got)) if len(got) == 1 else None

    async def __call__(self, request: LikelihoodRequest) -> float:
        self.calls.append(request)
        for text in (request.value, *(v for _, v in request.facts)):
            got = self.about_all(text)
            if got:
                return self.high if self.gold in got else self.low
        return 0.5


@dataclass
class CapRow:
    """One item under the oracle: right or not, and what the engine did that could explain a loss."""

    id: str
    benchmark: str
    question_type: str
    correct: bool
    gold: str
    answer: str
    posterior: list[float]
    requests: int
    stopped_because: str | None
    parse_source: str | None
    variable: str | None
    least_likely: bool
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_LEAST = re.compile(r"\bleast (?:likely|probable|plausible)\b", re.I)


def asks_for_least_likely(question: str) -> bool:
    """The item's own semantics, for the oracle (not the engine's reading, `analysis.asks_least_likely`, which the
    cap tests): the benchmarks' "which of the following statements is LEAST likely true?"."""
    return _LEAST.search(question) is not None


Perception = Literal["all", "none"]


def seeing_model() -> Any:
    """A scripted model for the structured steps under the oracle: every perception prompt answered "the agent
    perceived every sentence and did nothing" (so the perception cross-checks of timeline.perceive, rules.py, decide
    what it did not see and what it did), every other structured step answered unusably (so the question parse and
    the hypotheses take their deterministic fallbacks). It is no likelihood: the oracle is."""
    from thoughttrace.llm import get_model

    def respond(messages: Any, cfg: Any) -> str:
        first = messages[0]["content"] if isinstance(messages[0], dict) else messages[0].content
        if re.search(r"Consider [^.]+\. Reply with only a JSON object", first):
            n = len(re.findall(r"^\d+\. ", first, re.M))
            return json.dumps({"observed": list(range(1, n + 1)), "actions": []})
        return "{}"

    return get_model("scripted", cache=False, fn=respond)


async def cap_item(item: ToMItem, config: Any = None, *, perception: Perception = "none") -> CapRow:
    """Run AutoToM on one item with the oracle likelihood; `config` an AutoToMConfig or None. `perception`: "all"
    (default) runs the perception step with `seeing_model` (the perception rules then do their work); "none" runs no
    structured step at all (`llm_steps=False`: each step's observation is latent; the default, the cap test pins it)."""
    from dataclasses import replace

    from .autotom import AutoToM, AutoToMConfig
    from .harness import predicted_set

    gold = item.answer_indices
    if gold is None or len(gold) != 1:
        raise ValueError(f"{item.id}: the oracle cap needs single-answer items with a gold answer")
    cfg = replace(config or AutoToMConfig(), llm_steps=perception == "all")
    lik = OracleLikelihood(item.choices, gold[0], least=asks_for_least_likely(item.question))
    model = seeing_model() if perception == "all" else None
    ans = await AutoToM(cfg, likelihood=lik).solve(model, item.story, item.question, item.choices)
    pred = predicted_set(ans.posterior, ans.ties, multi_label=False)
    q = (ans.trace.get("question") or {}).get("result") or {}
    disc = ans.trace.get("discovery") or {}
    notes = []
    if ans.trace.get("choices_filtered"):
        notes.append(f"choices filtered: {ans.trace['choices_filtered']}")
    if all(lik.about(s) is None for s in q.get("statements", [])):
        notes.append("no statement is about a single choice")
    return CapRow(id=item.id, benchmark=item.benchmark, question_type=item.question_type,
                  correct=ans.error is None and pred == gold, gold=item.answer or "", answer=ans.letter,
                  posterior=[round(p, 4) for p in ans.posterior], requests=len(set(lik.calls)),
                  stopped_because=disc.get("stopped_because"), parse_source=q.get("source"),
                  variable=q.get("variable"), least_likely=ans.least_likely, error=ans.error, notes=notes)


async def cap(items: Sequence[ToMItem], config: Any = None, *, concurrency: int = 8,
              perception: Perception = "none") -> list[CapRow]:
    """Every item under the oracle, in the given order (single-answer items only; others are skipped)."""
    sem = asyncio.Semaphore(concurrency)
    usable = [it for it in items if it.answer_indices is not None and len(it.answer_indices) == 1]

    async def one(it: ToMItem) -> CapRow:
        async with sem:
            return await cap_item(it, config, perception=perception)

    return list(await asyncio.gather(*(one(it) for it in usable)))


def cap_summary(rows: Sequence[CapRow]) -> dict[str, Any]:
    """The cap per benchmark and overall (k of n), and the items below it."""
    out: dict[str, Any] = {"format_version": FORMAT_VERSION, "overall": {"k": sum(r.correct for r in rows), "n": len(rows)},
                           "benchmarks": {}, "missed": [r.as_dict() for r in rows if not r.correct]}
    for r in rows:
        b = out["benchmarks"].setdefault(r.benchmark, {"k": 0, "n": 0})
        b["k"] += r.correct
        b["n"] += 1
    return out
