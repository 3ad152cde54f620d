"""Calibrated likelihoods P(value | parents) from a language model.

The model is asked whether a statement is Likely or Unlikely given facts; the likelihood is
P(Likely) / (P(Likely) + P(Unlikely)), which removes the mass the model puts on other tokens and so makes
numbers from different prompts comparable. Three ways to get it, chosen by the backend's capabilities:

1. `logprobs`: next-token log-probabilities (llama.cpp, vLLM, OpenAI); tokens are matched by prefix
   ("L", "Lik", "likely" count as Likely; "U", "Un", "unlikely" as Unlikely), so a tokenizer that splits
   the words still counts. Neither in the top-k: 0.5 (no information), marked `uninformative`.
2. `score`: continuation log-probs of " Likely" and " Unlikely" (transformers, vLLM prompt_logprobs).
3. `verbal` (fallback for generate-only backends): the model states a probability; the reply must be a
   bare number in [0, 1] (parsed strictly, never evaluated); one retry with the error fed back; then 0.5.

Values are clamped to [floor, 1 - floor] so that one overconfident call cannot zero out a hypothesis.
Requests are memoised per instance (and cached on disk by the model layer); callers gather them.

A `ChoiceRequest` asks for a whole row at once: the distribution P(V = option | facts) over a variable's
hypotheses, as the mass of each option's letter (A, B, ...) in one answer (`logprobs`), or the softmax of
the letters' continuation log-probs (`score`); `row_both_orders` asks it with the options in both orders to
remove the model's taste for a letter. The row sums to one as a conditional distribution must (per-statement
Likely/Unlikely values do not: a previous belief whose row sums higher acted as evidence for itself).
Generate-only backends have no letter distribution (`supports_choice` is False) and are asked per statement.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from thoughttrace.llm import Model

from .inference import normalise_log
from .items import LETTERS, letter, letter_mass, options_text
from .prompts import render, template
from .usage import TrackedModel, track

Method = Literal["auto", "logprobs", "score", "verbal"]
_NUMBER = re.compile(r"^\s*(0(?:\.\d+)?|1(?:\.0+)?|\.\d+)\s*\.?\s*$")


class LikelihoodRequest(BaseModel):
    """One factor value: how likely `value` (a statement about `variable`) is given `facts`.

    `context` is a long shared prefix (e.g. a story) put FIRST so that llama.cpp reuses its KV cache
    across the requests of one question; the varying part comes last.
    """

    model_config = ConfigDict(frozen=True)
    agent: str
    variable: str
    value: str
    facts: tuple[tuple[str, str], ...] = ()
    context: str = ""

    def render(self, template_name: str = "likelihood") -> str:
        return render(template_name, **_shared_fields(self.context, self.facts), agent=self.agent,
                      variable=self.variable, value=self.value)


def _shared_fields(context: str, facts: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The context block (first, for llama.cpp's KV cache) and the facts list of a likelihood prompt."""
    return {"context": f"{context.strip()}\n\n" if context.strip() else "",
            "facts": "\n".join(f"- {label}: {text}" for label, text in facts) or "- (none)"}


class ChoiceRequest(BaseModel):
    """One row of a factor: which of `options` (hypotheses of `variable`) holds given `facts`."""

    model_config = ConfigDict(frozen=True)
    agent: str
    variable: str
    options: tuple[str, ...]
    facts: tuple[tuple[str, str], ...] = ()
    context: str = ""

    def render(self) -> str:
        if len(self.options) > len(LETTERS):
            raise ValueError(f"a row has at most {len(LETTERS)} options, got {len(self.options)}; drop hypotheses first")
        return render("likelihood_choice", **_shared_fields(self.context, self.facts), agent=self.agent,
                      variable=self.variable, options=options_text(self.options))


class Likelihood(Protocol):
    """Anything that maps a request to a probability in (0, 1]: the LLM, or a scripted table in tests."""

    async def __call__(self, request: LikelihoodRequest) -> float: ...


class RowLikelihood(Likelihood, Protocol):
    """A likelihood that can also give a whole row (a distribution over the options) when `supports_choice`."""

    supports_choice: bool

    async def choose(self, request: ChoiceRequest) -> list[float]: ...


def rows_of(likelihood: Likelihood) -> RowLikelihood | None:
    """`likelihood` when it gives rows, else None (a plain callable, or a generate-only backend)."""
    return likelihood if getattr(likelihood, "supports_choice", False) else None  # type: ignore[return-value]


class ScriptedLikelihood:
    """A likelihood from a plain function (tests, ablations); counts its calls like the LLM one. With
    `choose`, rows are scripted too (and `supports_choice` is true); without it, every factor is asked
    per statement, as before rows existed."""

    def __init__(self, fn: Callable[[LikelihoodRequest], float],
                 choose: Callable[[ChoiceRequest], Sequence[float]] | None = None) -> None:
        self.fn = fn
        self.choose_fn = choose
        self.supports_choice = choose is not None
        self.calls: list[LikelihoodRequest | ChoiceRequest] = []

    async def __call__(self, request: LikelihoodRequest) -> float:
        self.calls.append(request)
        return float(self.fn(request))

    async def choose(self, request: ChoiceRequest) -> list[float]:
        if self.choose_fn is None:
            raise TypeError("this ScriptedLikelihood has no `choose` function; pass choose=... to script rows")
        self.calls.append(request)
        return [float(x) for x in self.choose_fn(request)]


def classify_mass(top: list[tuple[str, float]], yes: str = "likely", no: str = "unlikely") -> tuple[float, float]:
    """Probability mass of the Likely and Unlikely answers among top-k (token, logprob) pairs."""
    p_yes = p_no = 0.0
    for token, logprob in top:
        t = token.strip().lower()
        if not t:
            continue
        if yes.startswith(t):
            p_yes += math.exp(logprob)
        elif no.startswith(t):
            p_no += math.exp(logprob)
    return p_yes, p_no


def parse_probability(text: str) -> float:
    """A bare number in [0, 1]; anything else raises ValueError (no guessing from prose)."""
    match = _NUMBER.match(text)
    if not match:
        raise ValueError(f"expected a bare number between 0 and 1, got {text.strip()[:60]!r}")
    return float(match.group(1))


class LLMLikelihood:
    """Calibrated LLM likelihoods; `trace` keeps every request with its value and how it was obtained."""

    def __init__(self, model: Model | TrackedModel, *, method: Method = "auto", floor: float = 1e-3,
                 top_k: int = 20) -> None:
        self.model = track(model)
        self.method = self._choose(method)
        self.floor = floor
        self.top_k = top_k
        self._memo: dict[LikelihoodRequest, asyncio.Future[float]] = {}
        self._rows: dict[ChoiceRequest, asyncio.Future[list[float]]] = {}
        self.trace: list[dict[str, Any]] = []
        self.supports_choice = self.method in ("logprobs", "score")

    def _choose(self, method: Method) -> str:
        if method != "auto":
            return method
        if self.model.supports("next_token_logprobs"):
            return "logprobs"
        if self.model.supports("score"):
            return "score"
        return "verbal"

    @property
    def n_requests(self) -> int:
        return len(self._memo) + len(self._rows)

    async def __call__(self, request: LikelihoodRequest) -> float:
        fut = self._memo.get(request)
        if fut is None:
            fut = asyncio.ensure_future(self._compute(request))
            self._memo[request] = fut
        return await fut

    async def _compute(self, request: LikelihoodRequest) -> float:
        note = ""
        if self.method == "logprobs":
            messages = [{"role": "system", "content": template("likelihood_system").strip()},
                        {"role": "user", "content": request.render()}]
            result = await self.model.anext_token_logprobs(messages, k=self.top_k)
            p_yes, p_no = classify_mass([(t.token, t.logprob) for t in result.top])
            if p_yes + p_no <= 0:
                p, note = 0.5, "uninformative"
            else:
                p = p_yes / (p_yes + p_no)
        elif self.method == "score":
            prompt = template("likelihood_system").strip() + "\n\n" + request.render() + "\nAnswer:"
            scored = await self.model.ascore(prompt, [" Likely", " Unlikely"])
            a, b = scored.logprobs
            p = 1.0 / (1.0 + math.exp(b - a))
        else:
            p, note = await self._verbal(request)
        p = min(max(p, self.floor), 1.0 - self.floor)
        self.trace.append({"variable": request.variable, "value": request.value, "facts": list(request.facts),
                           "p": p, "method": self.method, **({"note": note} if note else {})})
        return p

    async def choose(self, request: ChoiceRequest) -> list[float]:
        fut = self._rows.get(request)
        if fut is None:
            fut = asyncio.ensure_future(self._compute_row(request))
            self._rows[request] = fut
        return await fut

    async def _compute_row(self, request: ChoiceRequest) -> list[float]:
        n, note = len(request.options), ""
        if self.method == "logprobs":
            messages = [{"role": "system", "content": template("likelihood_choice_system").strip()},
                        {"role": "user", "content": request.render()}]
            result = await self.model.anext_token_logprobs(messages, k=self.top_k)
            mass = letter_mass([(t.token, t.logprob) for t in result.top], n)
        elif self.method == "score":
            prompt = template("likelihood_choice_system").strip() + "\n\n" + request.render() + "\nAnswer:"
            scored = await self.model.ascore(prompt, [f" {letter(i)}" for i in range(n)])
            top = max(scored.logprobs)
            mass = [math.exp(lp - top) for lp in scored.logprobs]
        else:
            raise TypeError(f"method {self.method!r} gives no distribution over options; ask per statement")
        total = sum(mass)
        if total <= 0:
            row, note = [1.0 / n] * n, "uninformative"
        else:
            row = [min(max(m / total, self.floor), 1.0 - self.floor) for m in mass]
        self.trace.append({"variable": request.variable, "options": list(request.options),
                           "facts": list(request.facts), "p": row, "method": self.method,
                           **({"note": note} if note else {})})
        return row

    async def _verbal(self, request: LikelihoodRequest) -> tuple[float, str]:
        messages: list[dict[str, str]] = [{"role": "user", "content": request.render("likelihood_verbal")}]
        for attempt in range(2):
            out = await self.model.agenerate(messages, max_tokens=8, temperature=0.0)
            try:
                return parse_probability(out.text), ""
            except ValueError as exc:
                if attempt == 0:
                    messages += [{"role": "assistant", "content": out.text},
                                 {"role": "user", "content": f"Invalid: {exc}. Reply with only a number like 0.7."}]
        return 0.5, "verbal-unparsed"


async def row_both_orders(likelihood: RowLikelihood, request: ChoiceRequest) -> list[float]:
    """P(option | facts) without the model's taste for a letter: the row asked with the options in the given
    and in the reversed order (two requests), combined by the normalised geometric mean. A taste for a letter
    multiplies whichever option that letter labels; over the two orders every option is labelled from both
    ends, so for two options the taste cancels exactly, and for more it is spread evenly. Asked in one order,
    the 1.5B model's rows put 0.7 to 0.8 on option A for items whose answer is B (dev split)."""
    flipped = request.model_copy(update={"options": request.options[::-1]})
    forward, backward = await asyncio.gather(likelihood.choose(request), likelihood.choose(flipped))
    return normalise_log([0.5 * (math.log(max(f, 1e-300)) + math.log(max(b, 1e-300)))
                          for f, b in zip(forward, backward[::-1])])


async def gather_probs(likelihood: Likelihood, requests: list[LikelihoodRequest]) -> list[float]:
    """Issue independent likelihood requests concurrently (the model layer bounds the concurrency)."""
    coros: list[Awaitable[float]] = [likelihood(r) for r in requests]
    return list(await asyncio.gather(*coros))
