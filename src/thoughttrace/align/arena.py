"""Arena-style evaluation: candidates' answers against a baseline's, judged twice with positions swapped.

Game 1 shows the baseline as A and the candidate as B, game 2 the other way round (position bias then
cancels). Verdicts become Bradley-Terry data (strong verdicts weighted, ties as half wins), fitted with
and without style control; confidence intervals resample whole questions. The headline figures are
Arena-Hard's: the predicted win rate against the baseline, raw and style-controlled, in percent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from thoughttrace.llm import Model

from .answers import Answer, Question
from .bt import BootstrapResult, Games, bootstrap_bt
from .judge import Judgment, ajudge, game_hash
from .records import FORMAT_VERSION, AlignError, append_jsonl, read_models
from .style import STYLE_FEATURES, style_counts, style_diff


def index_answers(answers: Sequence[Answer]) -> dict[str, dict[str, Answer]]:
    """model name -> question id -> answer (the last one wins when a file repeats a question)."""
    out: dict[str, dict[str, Answer]] = {}
    for a in answers:
        out.setdefault(a.model, {})[a.question_id] = a
    return out


def load_judgments(path: str | Path) -> list[Judgment]:
    return read_models(path, Judgment, "judgment")


async def arun_games(
    questions: Sequence[Question], answers: dict[str, dict[str, Answer]], baseline: str, judge: Model, *,
    out: str | Path | None = None, max_tokens: int = 1024, retries: int = 2, progress: bool = True,
) -> list[Judgment]:
    """Judge every candidate against the baseline on every question both answered (two games each).

    Judgments already in `out` are reused (resume); new ones are appended as they finish.
    """
    if baseline not in answers:
        raise AlignError(f"no answers from the baseline {baseline!r}; models with answers: {sorted(answers)}")
    candidates = [m for m in answers if m != baseline]
    if not candidates:
        raise AlignError("only the baseline has answers; add a candidate's answers file")
    done: dict[tuple[str, int, str, str, str], Judgment] = {}
    if out is not None and Path(out).exists():
        for j in load_judgments(out):
            if j.judge == judge.spec:
                done[(j.question_id, j.game, j.model_a, j.model_b, j.answers_sha256)] = j
    jobs: list[tuple[Question, int, str, str]] = []
    for cand in candidates:
        for q in questions:
            if q.question_id not in answers[baseline] or q.question_id not in answers[cand]:
                continue
            jobs.append((q, 1, baseline, cand))
            jobs.append((q, 2, cand, baseline))
    if not jobs:
        raise AlignError("no question has answers from both the baseline and a candidate; check the answer files "
                         "and the question file share question ids")
    bar = tqdm(total=len(jobs), desc="arena", disable=None if progress else True)

    async def one(q: Question, game: int, a: str, b: str) -> Judgment:
        answer_a, answer_b = answers[a][q.question_id].answer, answers[b][q.question_id].answer
        sha = game_hash(q.prompt, answer_a, answer_b)
        key = (q.question_id, game, a, b, sha)
        if key in done:
            bar.update(1)
            return done[key]
        verdict, attempts, fallback, raw = await ajudge(judge, q.prompt, answer_a, answer_b,
                                                        max_tokens=max_tokens, retries=retries)
        j = Judgment(question_id=q.question_id, game=game, model_a=a, model_b=b, judge=judge.spec,
                     verdict=verdict, answers_sha256=sha, attempts=attempts, fallback=fallback,  # type: ignore[arg-type]
                     raw=raw)
        if out is not None:
            append_jsonl(j, out)
        bar.update(1)
        return j

    try:
        return list(await asyncio.gather(*(one(*job) for job in jobs)))
    finally:
        bar.close()


def build_games(judgments: Sequence[Judgment], answers: dict[str, dict[str, Answer]]) -> tuple[Games, int]:
    """(games for Bradley-Terry, number of judgments without a verdict)."""
    models = sorted({j.model_a for j in judgments} | {j.model_b for j in judgments})
    qids = sorted({j.question_id for j in judgments})
    first, second, y, w, style, group = [], [], [], [], [], []
    unparsed = 0
    counts: dict[tuple[str, str], dict[str, float]] = {}

    def feats(model: str, qid: str) -> dict[str, float]:
        if (model, qid) not in counts:
            ans = answers[model][qid]
            counts[(model, qid)] = ans.style if ans.style is not None else style_counts(ans.answer)
        return counts[(model, qid)]

    for j in judgments:
        oc = j.outcome()
        if oc is None:
            unparsed += 1
            continue
        first.append(models.index(j.model_a))
        second.append(models.index(j.model_b))
        y.append(oc[0])
        w.append(oc[1])
        style.append(style_diff(feats(j.model_a, j.question_id), feats(j.model_b, j.question_id)))
        group.append(qids.index(j.question_id))
    games = Games(np.asarray(first, dtype=int), np.asarray(second, dtype=int), np.asarray(y, dtype=float),
                  np.asarray(w, dtype=float), np.asarray(style, dtype=float).reshape(-1, len(STYLE_FEATURES)),
                  np.asarray(group, dtype=int), models)
    return games, unparsed


@dataclass
class ModelRow:
    model: str
    win_rate: float | None
    win_rate_ci: tuple[float, float] | None
    sc_win_rate: float | None
    sc_win_rate_ci: tuple[float, float] | None
    wins: float
    ties: float
    losses: float
    games: int
    unparsed: int
    mean_length: float


@dataclass
class ArenaResult:
    baseline: str
    judge: str
    rows: list[ModelRow]
    style_coefficients: dict[str, float]
    bootstrap_samples: int
    style_frozen: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "baseline": self.baseline, "judge": self.judge,
            "bootstrap_samples": self.bootstrap_samples, "style_coefficients": self.style_coefficients,
            "style_frozen": self.style_frozen,
            "models": [vars(r) for r in self.rows],
        }


def score_arena(judgments: Sequence[Judgment], answers: dict[str, dict[str, Answer]], baseline: str, *,
                samples: int = 200, seed: int = 0, frozen_style: dict[str, float] | None = None) -> ArenaResult:
    """Win rates vs the baseline (raw and style-controlled, with bootstrap 95% CIs) per candidate.

    `frozen_style` (feature -> coefficient, e.g. an earlier run's `style_coefficients`) fixes the style
    coefficients instead of refitting them, so a new model's games cannot shift the others' scores.
    """
    games, _ = build_games(judgments, answers)
    judge = judgments[0].judge if judgments else ""
    plain: BootstrapResult | None = None
    sc: BootstrapResult | None = None
    fixed = None
    if frozen_style is not None:
        missing = [k for k in STYLE_FEATURES if k not in frozen_style]
        if missing:
            raise AlignError(f"frozen style coefficients lack {missing}; give all of {list(STYLE_FEATURES)} "
                             "(the style_coefficients of an earlier results.json)")
        fixed = np.array([float(frozen_style[k]) for k in STYLE_FEATURES])
    if len(games) and baseline in games.models:
        plain = bootstrap_bt(games, baseline, style=False, samples=samples, seed=seed)
        sc = bootstrap_bt(games, baseline, style=True, samples=samples, seed=seed, fixed_gamma=fixed)
    rows: list[ModelRow] = []
    names = sorted({j.model_a for j in judgments} | {j.model_b for j in judgments} | {baseline})
    for name in names:
        mine = [j for j in judgments if name in (j.model_a, j.model_b)]
        w = t = lo = 0.0
        n = unp = 0
        for j in mine:
            oc = j.outcome()
            if oc is None:
                unp += 1
                continue
            n += 1
            score = oc[0] if j.model_a == name else 1 - oc[0]
            if score == 1:
                w += oc[1]
            elif score == 0:
                lo += oc[1]
            else:
                t += oc[1]
        lengths = [style_counts(a.answer)["length"] for a in answers.get(name, {}).values()]

        def pct(res: BootstrapResult | None, name: str = name) -> tuple[float | None, tuple[float, float] | None]:
            if res is None or name not in res.win_rate:
                return None, None
            iv = res.win_rate[name]
            return 100 * iv.estimate, (100 * iv.low, 100 * iv.high)

        wr, wr_ci = pct(plain)
        swr, swr_ci = pct(sc)
        rows.append(ModelRow(name, wr, wr_ci, swr, swr_ci, w, t, lo, n, unp,
                             float(np.mean(lengths)) if lengths else 0.0))
    coef = {k: float(v) for k, v in zip(STYLE_FEATURES, sc.point.gamma)} if sc is not None else {}
    return ArenaResult(baseline, judge, rows, coef, samples, style_frozen=fixed is not None)


def results_markdown(result: ArenaResult) -> str:
    """The results table (baseline last, candidates by win rate)."""

    def fmt(v: float | None, ci: tuple[float, float] | None) -> str:
        if v is None or ci is None:
            return "n/a"
        return f"{v:.1f} ({ci[0]:.1f} to {ci[1]:.1f})"

    rows = sorted(result.rows, key=lambda r: (r.model == result.baseline, -(r.win_rate or 0)))
    lines = [
        f"Baseline: `{result.baseline}`; judge: `{result.judge}`; 95% CIs from {result.bootstrap_samples} "
        "bootstrap resamples of questions.",
        "",
        "| model | win rate % (95% CI) | style-controlled win rate % (95% CI) | W / T / L (weighted) | games "
        "| unparsed | mean length (words) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.model} | {fmt(r.win_rate, r.win_rate_ci)} | {fmt(r.sc_win_rate, r.sc_win_rate_ci)} | "
                     f"{r.wins:g} / {r.ties:g} / {r.losses:g} | {r.games} | {r.unparsed} | {r.mean_length:.0f} |")
    if result.style_coefficients:
        coef = ", ".join(f"{k} {v:+.2f}" for k, v in result.style_coefficients.items())
        frozen = " (frozen: given, not refitted)" if result.style_frozen else ""
        lines += ["", f"Style coefficients (log-odds per unit normalised difference){frozen}: {coef}"]
    return "\n".join(lines) + "\n"
