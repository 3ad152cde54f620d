"""Arena-style evaluation: candidates' answers against a baseline's, judged twice with positions swapped.

Game 1 shows the baseline as A and the candidate as B, game 2 the other way round (position bias then
cancels). Verdicts become Bradley-Terry data (strong verdicts weighted, ties as half wins), fitted with
and without style control. The headline figures are Arena-Hard's: the win rate against the baseline, raw
and style-controlled, in percent. Two scoring methods, named in every output (METHOD_NOTES):
arena-hard-auto's own (the default, `align.battles`) and ThoughtTrace's (`align.bt`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from thoughttrace.llm import Model

from .answers import Answer, Question
from .bt import Games, Interval, bootstrap_bt
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
    feats = _style_lookup(answers)
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


#: the scoring methods `score_arena` offers; the first is the default
METHODS: tuple[str, ...] = ("arena-hard-auto", "thoughttrace")

#: how each method scores, said in every results table and results.json
METHOD_NOTES: dict[str, dict[str, Any]] = {
    "arena-hard-auto": {
        "source": "arena-hard-auto v2.0 show_result.py, reimplemented (align.battles)",
        "ci_level": 0.90, "resampling": "battle rows (a strong verdict is 3 rows)",
        "null_rule": "a question with a null game is dropped whole (both games)",
        "estimate": "plain: mean over resamples of the mean score; style-controlled: median over resamples",
        "style_features": "length (a-b)/(a+b), Markdown density d=count/(length+1) as (da-db)/(da+db+1); "
                          "centred and scaled over the rows",
    },
    "thoughttrace": {
        "source": "ThoughtTrace's own (align.bt)",
        "ci_level": 0.95, "resampling": "questions",
        "null_rule": "a game without a verdict is dropped alone",
        "estimate": "point fit (Bradley-Terry, baseline at 0)",
        "style_features": "(a-b)/(a+b) of the raw counts, scaled, not centred (strength at equal style)",
    },
}


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
    dropped: int = 0  # games left out of the scores (unparsed ones, and under arena-hard-auto their partners)


@dataclass
class ArenaResult:
    baseline: str
    judge: str
    rows: list[ModelRow]
    style_coefficients: dict[str, float]
    bootstrap_samples: int
    style_frozen: bool = False
    method: str = METHODS[0]
    style_centre: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION, "baseline": self.baseline, "judge": self.judge,
            "method": self.method, "method_notes": METHOD_NOTES[self.method],
            "bootstrap_samples": self.bootstrap_samples, "style_coefficients": self.style_coefficients,
            "style_centre": self.style_centre, "style_frozen": self.style_frozen,
            "models": [vars(r) for r in self.rows],
        }


def _style_lookup(answers: dict[str, dict[str, Answer]]) -> Callable[[str, str], dict[str, float]]:
    counts: dict[tuple[str, str], dict[str, float]] = {}

    def feats(model: str, qid: str) -> dict[str, float]:
        if (model, qid) not in counts:
            ans = answers[model][qid]
            counts[(model, qid)] = ans.style if ans.style is not None else style_counts(ans.answer)
        return counts[(model, qid)]

    return feats


def _scored_games(judgments: Sequence[Judgment], baseline: str, method: str) -> set[int]:
    """Indices of the judgments that count: every judged game, or (arena-hard-auto) whole judged records."""
    judged = {i for i, j in enumerate(judgments) if j.verdict is not None}
    if method != "arena-hard-auto":
        return judged
    by_record: dict[tuple[str, str], list[int]] = {}
    for i, j in enumerate(judgments):
        cand = j.model_b if j.model_a == baseline else j.model_a
        by_record.setdefault((j.question_id, cand), []).append(i)
    return {i for idx in by_record.values() if len(idx) >= 2 and all(k in judged for k in idx) for i in idx}


def score_arena(judgments: Sequence[Judgment], answers: dict[str, dict[str, Answer]], baseline: str, *,
                samples: int = 100, seed: int = 0, frozen_style: dict[str, float] | None = None,
                frozen_centre: dict[str, float] | None = None, method: str = METHODS[0]) -> ArenaResult:
    """Win rates vs the baseline, raw and style-controlled, with bootstrap CIs, per candidate.

    `method` "arena-hard-auto" (default) computes what its show_result.py computes (90% CIs over battle
    rows, a question with a null game dropped whole, centred density style features); "thoughttrace" is
    this toolkit's own (95% CIs over questions, per-game null drop, uncentred count features): see
    METHOD_NOTES. `frozen_style` (feature -> coefficient, an earlier run's `style_coefficients`, with its
    `style_centre` under arena-hard-auto) fixes the style coefficients instead of refitting them, so a new
    model's games cannot shift the others' scores.
    """
    if method not in METHODS:
        raise AlignError(f"unknown scoring method {method!r}; choose one of {list(METHODS)}")
    if samples < 1:
        raise AlignError(f"--samples must be at least 1 (got {samples}): the scores are bootstrap statistics")
    judge = judgments[0].judge if judgments else ""
    feats = _style_lookup(answers)
    fixed = None
    if frozen_style is not None:
        missing = [k for k in STYLE_FEATURES if k not in frozen_style]
        if missing:
            raise AlignError(f"frozen style coefficients lack {missing}; give all of {list(STYLE_FEATURES)} "
                             "(the style_coefficients of an earlier results.json)")
        fixed = np.array([float(frozen_style[k]) for k in STYLE_FEATURES])
    plain_iv: dict[str, Interval] = {}
    sc_iv: dict[str, Interval] = {}
    coef: dict[str, float] = {}
    centre: dict[str, float] | None = None
    if method == "arena-hard-auto":
        from .battles import build_battles, plain_scores, style_scores

        battles = build_battles(judgments, baseline, feats, null_rule="question")
        if len(battles):
            frozen = None
            if fixed is not None:
                if frozen_centre is None:
                    raise AlignError("the frozen style coefficients come without their style_centre (a results.json "
                                     "of --method thoughttrace or an older version); rerun that arena, or pass "
                                     "--method thoughttrace")
                frozen = (fixed, np.array([float(frozen_centre.get(k, 0.0)) for k in STYLE_FEATURES]))
            plain_iv = plain_scores(battles, samples=samples, seed=seed)
            fit = style_scores(battles, samples=samples, seed=seed, frozen=frozen)
            sc_iv, coef, centre = fit.win_rate, fit.coefficients, fit.centre
    else:
        games, _ = build_games(judgments, answers)
        if len(games) and baseline in games.models:
            plain = bootstrap_bt(games, baseline, style=False, samples=samples, seed=seed)
            sc = bootstrap_bt(games, baseline, style=True, samples=samples, seed=seed, fixed_gamma=fixed)
            plain_iv = {k: v for k, v in plain.win_rate.items() if k != baseline}
            sc_iv = {k: v for k, v in sc.win_rate.items() if k != baseline}
            coef = {k: float(v) for k, v in zip(STYLE_FEATURES, sc.point.gamma)}
    if plain_iv:
        plain_iv[baseline] = sc_iv[baseline] = Interval(0.5, 0.5, 0.5)
    counted = _scored_games(judgments, baseline, method)
    rows: list[ModelRow] = []
    names = sorted({j.model_a for j in judgments} | {j.model_b for j in judgments} | {baseline})
    for name in names:
        w = t = lo = 0.0
        n = unp = dropped = 0
        for i, j in enumerate(judgments):
            if name not in (j.model_a, j.model_b):
                continue
            if j.verdict is None:
                unp += 1
            if i not in counted:
                dropped += 1
                continue
            oc = j.outcome()
            assert oc is not None
            n += 1
            score = oc[0] if j.model_a == name else 1 - oc[0]
            if score == 1:
                w += oc[1]
            elif score == 0:
                lo += oc[1]
            else:
                t += oc[1]
        lengths = [(a.style or style_counts(a.answer))["length"] for a in answers.get(name, {}).values()]

        def pct(res: dict[str, Interval], name: str = name) -> tuple[float | None, tuple[float, float] | None]:
            if name not in res:
                return None, None
            iv = res[name]
            return 100 * iv.estimate, (100 * iv.low, 100 * iv.high)

        wr, wr_ci = pct(plain_iv)
        swr, swr_ci = pct(sc_iv)
        rows.append(ModelRow(name, wr, wr_ci, swr, swr_ci, w, t, lo, n, unp,
                             float(np.mean(lengths)) if lengths else 0.0, dropped))
    return ArenaResult(baseline, judge, rows, coef, samples, style_frozen=fixed is not None, method=method,
                       style_centre=centre)


def results_markdown(result: ArenaResult) -> str:
    """The results table (baseline last, candidates by win rate)."""

    def fmt(v: float | None, ci: tuple[float, float] | None) -> str:
        if v is None or ci is None:
            return "n/a"
        return f"{v:.1f} ({ci[0]:.1f} to {ci[1]:.1f})"

    rows = sorted(result.rows, key=lambda r: (r.model == result.baseline, -(r.win_rate or 0)))
    note = METHOD_NOTES[result.method]
    level = f"{100 * note['ci_level']:.0f}%"
    other = [m for m in METHODS if m != result.method][0]
    lines = [
        f"Baseline: `{result.baseline}`; judge: `{result.judge}`; method: `{result.method}` ({note['source']}): "
        f"{level} CIs from {result.bootstrap_samples} bootstrap resamples of {note['resampling']}; "
        f"{note['null_rule']}; scores: {note['estimate']}; style features: {note['style_features']}. "
        f"(`--method {other}` for the other method.)",
        "",
        f"| model | win rate % ({level} CI) | style-controlled win rate % ({level} CI) | W / T / L (weighted) | games "
        "| unparsed | dropped | mean length (words; token_len where read) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r.model} | {fmt(r.win_rate, r.win_rate_ci)} | {fmt(r.sc_win_rate, r.sc_win_rate_ci)} | "
                     f"{r.wins:g} / {r.ties:g} / {r.losses:g} | {r.games} | {r.unparsed} | {r.dropped} | "
                     f"{r.mean_length:.0f} |")
    if result.style_coefficients:
        coef = ", ".join(f"{k} {v:+.2f}" for k, v in result.style_coefficients.items())
        frozen = " (frozen: given, not refitted)" if result.style_frozen else ""
        lines += ["", f"Style coefficients (log-odds per unit of the feature difference){frozen}: {coef}"]
    return "\n".join(lines) + "\n"
