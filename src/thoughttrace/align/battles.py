"""arena-hard-auto's scoring method (v2.0 `show_result.py`), written here from its documented computation.

What it does, and so what this module does (the default `--method arena-hard-auto`):
- a (question, candidate) record whose two games are not both judged is dropped whole (both games);
- each game becomes `weight` battle rows (a strong verdict 3) scored from the candidate's side: 1 win,
  0 loss, 0.5 tie. Rows are ordered as arena-hard-auto builds them (per record: the swapped game's rows,
  then game 1's), so a run with seed s draws the same resamples as its script after `np.random.seed(s)`;
- plain score: per model, battle rows resampled within the model; the score is the mean over rounds of
  the mean score, the 90% CI the 5th and 95th percentiles of the round means;
- style-controlled: Bradley-Terry (logistic regression without intercept) on one column per candidate
  (+1; the baseline fixed at 0) plus the style features (`style.arena_style_diff`) centred and scaled over
  all rows (mean 0, sd 1 with ddof 1); all rows resampled together; the score is the median of the
  rounds' win rates against the baseline, the 90% CI their 5th and 95th percentiles.
Why keep it: a paper quoting "Arena-Hard style-controlled win rate" means this computation; the tests
compare it with figures from arena-hard-auto's own script (tests/align/fixtures/arena_hard_parity/).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .bt import Interval, fit_logistic
from .judge import Judgment
from .records import AlignError
from .style import STYLE_FEATURES, arena_style_diff

#: a tiny ridge keeps a model that wins every row finite; small enough to move no reported digit
RIDGE = 1e-6

StyleOf = Callable[[str, str], dict[str, float]]


@dataclass
class Battles:
    """Battle rows of candidates against one baseline, from the candidate's side."""

    baseline: str
    models: list[str]  # candidates, sorted
    model: np.ndarray  # row -> index into models
    score: np.ndarray  # 1 candidate won, 0 lost, 0.5 tie
    style: np.ndarray  # (n, k) arena_style_diff(candidate, baseline)
    question: list[str]
    dropped_games: dict[str, int] = field(default_factory=dict)  # per candidate: games left out

    def __len__(self) -> int:
        return int(self.score.shape[0])


def build_battles(judgments: Sequence[Judgment], baseline: str, style_of: StyleOf, *, null_rule: str = "question",
                  ) -> Battles:
    """Battle rows from games against `baseline`.

    null_rule "question" (arena-hard-auto): a record (question, candidate) missing a verdict in either game
    is dropped whole; "game" (ThoughtTrace): only the game without a verdict is dropped.
    """
    from .prompts import judge_labels

    labels = judge_labels()
    records: dict[tuple[str, str], dict[int, Judgment]] = {}
    for j in judgments:
        if baseline not in (j.model_a, j.model_b) or j.model_a == j.model_b:
            continue
        cand = j.model_b if j.model_a == baseline else j.model_a
        game = 1 if j.model_a == baseline else 2
        records.setdefault((j.question_id, cand), {})[game] = j
    rows_model: list[str] = []
    rows_score: list[float] = []
    rows_style: list[np.ndarray] = []
    rows_q: list[str] = []
    dropped: dict[str, int] = {}
    for (qid, cand), games in records.items():
        judged = {g: j for g, j in games.items() if j.verdict is not None}
        if null_rule == "question" and len(judged) < 2:
            dropped[cand] = dropped.get(cand, 0) + 2
            continue
        dropped[cand] = dropped.get(cand, 0) + (2 - len(judged))
        if not judged:
            continue
        feats = arena_style_diff(style_of(cand, qid), style_of(baseline, qid))
        for g in (2, 1):  # arena-hard-auto lists the swapped game's votes first
            game_j = judged.get(g)
            if game_j is None:
                continue
            lab = labels[str(game_j.verdict)]
            votes = float(lab["weight"])
            if votes != int(votes):
                raise AlignError(f"judge.yaml weight {votes} for {game_j.verdict}: arena-hard-auto's method counts votes "
                                 "(whole numbers); use --method thoughttrace for fractional weights")
            first_score = float(lab["score"])
            s = first_score if g == 2 else 1.0 - first_score
            for _ in range(int(votes)):
                rows_model.append(cand)
                rows_score.append(s)
                rows_style.append(feats)
                rows_q.append(qid)
    models = sorted(set(rows_model))
    index = {m: i for i, m in enumerate(models)}
    return Battles(baseline, models, np.asarray([index[m] for m in rows_model], dtype=int),
                   np.asarray(rows_score, dtype=float),
                   np.asarray(rows_style, dtype=float).reshape(-1, len(STYLE_FEATURES)), rows_q, dropped)


def _quantiles(x: np.ndarray, level: float) -> tuple[float, float]:
    lo = (1 - level) / 2
    return float(np.quantile(x, lo)), float(np.quantile(x, 1 - lo))


def plain_scores(b: Battles, *, samples: int = 100, seed: int = 0, level: float = 0.90) -> dict[str, Interval]:
    """Per candidate: mean over bootstrap rounds of its mean battle score (rows resampled within the model)."""
    rs = np.random.RandomState(seed)  # the legacy generator: the stream arena-hard-auto's pandas sampling uses
    rows_of = [np.flatnonzero(b.model == i) for i in range(len(b.models))]
    means = np.empty((samples, len(b.models)))
    for s in range(samples):
        for i, rows in enumerate(rows_of):
            pick = rs.randint(0, len(rows), size=len(rows))
            means[s, i] = b.score[rows[pick]].mean()
    out = {}
    for i, m in enumerate(b.models):
        lo, hi = _quantiles(means[:, i], level)
        out[m] = Interval(float(means[:, i].mean()), lo, hi)
    return out


@dataclass
class StyleFit:
    win_rate: dict[str, Interval]
    coefficients: dict[str, float]  # per raw unit of the feature difference (median over rounds)
    centre: dict[str, float]  # the feature means the features were centred on
    frozen: bool = False


def standardise(style: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, sd): columns centred and scaled with ddof 1, as arena-hard-auto does; a constant column -> 0."""
    mean = style.mean(axis=0)
    sd = style.std(axis=0, ddof=1) if style.shape[0] > 1 else np.ones(style.shape[1])
    sd = np.where(sd < 1e-12, 1.0, sd)
    return (style - mean) / sd, mean, sd


def style_scores(b: Battles, *, samples: int = 100, seed: int = 0, level: float = 0.90,
                 frozen: tuple[np.ndarray, np.ndarray] | None = None) -> StyleFit:
    """Style-controlled Bradley-Terry win rates vs the baseline: median and percentiles over row resamples.

    `frozen` = (coefficients per raw unit, centre) from an earlier run: the style part becomes a fixed offset,
    so adding a model cannot move the others' scores.
    """
    n, m = len(b), len(b.models)
    x = np.zeros((n, m))
    x[np.arange(n), b.model] = 1.0
    if frozen is None:
        z, mean, sd = standardise(b.style)
        design, offset = np.hstack([x, z]), np.zeros(n)
    else:
        coef, mean = frozen
        sd = np.ones(b.style.shape[1])
        design, offset = x, (b.style - mean) @ coef
    rs = np.random.RandomState(seed)  # np.random.randint(0, n, (rounds, n)) after np.random.seed(seed)
    idx = rs.randint(0, n, size=(samples, n))
    win = np.empty((samples, m))
    gam = np.empty((samples, b.style.shape[1]))
    for s in range(samples):
        pick = idx[s]
        beta, _ = fit_logistic(design[pick], b.score[pick], np.ones(n), ridge=RIDGE, offset=offset[pick])
        win[s] = 1.0 / (1.0 + np.exp(-np.clip(beta[:m], -35, 35)))
        gam[s] = beta[m:] if frozen is None else 0.0
    out = {}
    for i, name in enumerate(b.models):
        lo, hi = _quantiles(win[:, i], level)
        out[name] = Interval(float(np.median(win[:, i])), lo, hi)
    raw = np.median(gam, axis=0) / sd if frozen is None else frozen[0]
    return StyleFit(out, {k: float(v) for k, v in zip(STYLE_FEATURES, raw)},
                    {k: float(v) for k, v in zip(STYLE_FEATURES, mean)}, frozen is not None)
