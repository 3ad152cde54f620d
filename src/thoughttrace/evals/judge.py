"""LLM judges: a rubric (data file), a strict output format, retries, several samples, position swap.

A judge reply must END with a line `Score: N` (N a whole number on the rubric's scale). A reply that does
not is a `ParseError` keeping the raw text; the error is fed back and the judge asked again (`max_retries`).
When every attempt fails the sample is dropped (fallback), and a result whose samples all failed has
`mean = None` and counts in the summary's `judge_failures`, so failures never pass as low scores.

Several samples (temperature > 0, `GenerationConfig.sample_index` keeps them apart in the cache) give a
mean and a spread; for a symmetric comparison each sample is asked in both orders (A/B and B/A), which
cancels position bias and measures it (`order_gap`).
"""

from __future__ import annotations

import asyncio
import re
from typing import Literal

from pydantic import BaseModel

from thoughttrace.llm import GenerationConfig, Model, ParseError

from .resources import Rubric, load_prompt, load_rubric
from .stats import spread

_SCORE_LINE = re.compile(r"^[*_`\s]*score[*_`\s]*[:=][*_`\s]*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?[*_`.\s]*$", re.I)


def parse_score(text: str, lo: int, hi: int) -> int:
    """The score on the final non-empty line `Score: N`; ParseError (with the raw text) otherwise."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise ParseError("empty reply; expected a final line 'Score: N'", text)
    match = _SCORE_LINE.match(lines[-1])
    if match is None:
        raise ParseError(f"the last line is not of the form 'Score: N' with N from {lo} to {hi}", text)
    raw = match.group(1)
    if "." in raw and not float(raw).is_integer():
        raise ParseError(f"the score must be a whole number from {lo} to {hi}, got {raw}", text)
    value = int(float(raw))
    if not lo <= value <= hi:
        raise ParseError(f"the score {value} is outside the scale {lo} to {hi}", text)
    return value


#: characters of a judge's raw reply kept per sample in the item records
RAW_KEPT = 4000


class JudgeSample(BaseModel):
    score: int | None
    order: Literal["ab", "ba"]
    sample_index: int
    attempts: int
    error: str | None = None
    raw: str = ""


class JudgeResult(BaseModel):
    """Every sample of one judgement, their mean and spread, and the position-bias estimate."""

    rubric: str
    judge: str
    mean: float | None
    sd: float | None
    scores: list[int]
    failures: int
    order_gap: float | None = None
    samples: list[JudgeSample]

    def compact(self) -> dict[str, object]:
        """What a per-item record keeps: the scores and every sample's raw reply (a failed one included),
        so a judge failure can be read and re-parsed without the cache."""
        return {
            "judge": self.judge, "rubric": self.rubric, "mean": self.mean, "sd": self.sd, "scores": self.scores,
            "failures": self.failures, "order_gap": self.order_gap,
            "replies": [{"order": s.order, "sample_index": s.sample_index, "score": s.score, "attempts": s.attempts,
                         "error": s.error, "raw": s.raw} for s in self.samples],
        }


class Judge:
    """Scores texts with a model against a rubric."""

    def __init__(
        self,
        model: Model,
        rubric: str | Rubric = "thought_similarity",
        *,
        samples: int = 1,
        temperature: float | None = None,
        swap: bool = True,
        max_retries: int = 2,
        max_tokens: int = 128,
    ) -> None:
        if samples < 1:
            raise ValueError("a judge needs at least one sample (--judge-samples >= 1)")
        self.model = model
        self.rubric = load_rubric(rubric) if isinstance(rubric, str) else rubric
        self.samples = samples
        self.temperature = temperature if temperature is not None else (0.7 if samples > 1 else 0.0)
        self.swap = swap
        self.max_retries = max_retries
        self.max_tokens = max_tokens

    @property
    def name(self) -> str:
        return self.model.spec

    async def _one(self, text_a: str, text_b: str, context: str, order: Literal["ab", "ba"], index: int) -> JudgeSample:
        a, b = (text_a, text_b) if order == "ab" else (text_b, text_a)
        messages = self.rubric.render(a, b, context)
        config = GenerationConfig(
            temperature=self.temperature, max_tokens=self.max_tokens, sample_index=index, seed=index
        )
        lo, hi = self.rubric.scale.min, self.rubric.scale.max
        error: str | None = None
        raw = ""
        for attempt in range(1, self.max_retries + 2):
            gen = await self.model.agenerate(messages, config)
            raw = gen.text
            try:
                return JudgeSample(score=parse_score(raw, lo, hi), order=order, sample_index=index, attempts=attempt,
                                   raw=raw[:RAW_KEPT])
            except ParseError as exc:
                error = str(exc).split(" (raw output")[0]
                feedback = load_prompt("retry").fill("user", error=error + f" End with a final line 'Score: N' (N from {lo} to {hi}).")
                messages = [*messages, {"role": "assistant", "content": raw}, {"role": "user", "content": feedback}]
        return JudgeSample(score=None, order=order, sample_index=index, attempts=self.max_retries + 1, error=error,
                           raw=raw[:RAW_KEPT])

    async def ajudge(self, text_a: str, text_b: str = "", context: str = "") -> JudgeResult:
        """Score one text (rubrics with one text) or a pair (similarity rubrics)."""
        orders: list[Literal["ab", "ba"]] = ["ab", "ba"] if (self.swap and self.rubric.symmetric and text_b) else ["ab"]
        jobs = [self._one(text_a, text_b, context, o, i) for i in range(self.samples) for o in orders]
        samples = list(await asyncio.gather(*jobs))
        scores = [s.score for s in samples if s.score is not None]
        gap: float | None = None
        if len(orders) == 2:
            ab = [s.score for s in samples if s.order == "ab" and s.score is not None]
            ba = [s.score for s in samples if s.order == "ba" and s.score is not None]
            if ab and ba:
                gap = sum(ab) / len(ab) - sum(ba) / len(ba)
        return JudgeResult(
            rubric=self.rubric.name, judge=self.name, mean=sum(scores) / len(scores) if scores else None,
            sd=spread(scores), scores=scores, failures=sum(1 for s in samples if s.score is None),
            order_gap=gap, samples=samples,
        )
