"""Bradley-Terry with style control, tested on synthetic games with known strengths."""

from __future__ import annotations

import numpy as np

from thoughttrace.align import bootstrap_bt, fit_bt, games_from_arrays
from thoughttrace.align.style import STYLE_FEATURES, style_counts, style_diff


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _simulate(theta, n_games, rng, style_of=None, gamma=None, pairs=None):
    m = len(theta)
    pairs = pairs or [(i, j) for i in range(m) for j in range(m) if i != j]
    first, second, y, style = [], [], [], []
    for g in range(n_games):
        i, j = pairs[g % len(pairs)]
        s = np.zeros(len(STYLE_FEATURES))
        if style_of is not None:
            s = style_of(i, rng) - style_of(j, rng)
        logit = theta[i] - theta[j] + (s @ gamma if gamma is not None else 0.0)
        first.append(i)
        second.append(j)
        y.append(float(rng.random() < _sigmoid(logit)))
        style.append(s)
    return first, second, y, np.array(style)


def test_bt_recovers_known_strengths():
    rng = np.random.default_rng(1)
    theta = np.array([0.0, 0.8, -0.5, 1.5])
    first, second, y, _ = _simulate(theta, 6000, rng)
    fit = fit_bt(games_from_arrays(["base", "m1", "m2", "m3"], first, second, y), "base")
    assert fit.converged
    np.testing.assert_allclose(fit.theta, theta, atol=0.15)
    assert abs(fit.win_rate("m3") - _sigmoid(1.5)) < 0.03
    assert fit.win_rate("base") == 0.5


def test_strong_verdict_weights_and_ties():
    # one strong win (weight 3) for m against one plain loss: theta = log(3)
    g = games_from_arrays(["base", "m"], [1, 1], [0, 0], [1.0, 0.0], weight=[3, 1])
    assert abs(fit_bt(g, "base", ridge=0.0).theta[1] - np.log(3)) < 1e-6
    ties = games_from_arrays(["base", "m"], [1, 0] * 5, [0, 1] * 5, [0.5] * 10)
    assert abs(fit_bt(ties, "base").theta[1]) < 1e-9


def test_style_control_removes_a_length_confound():
    """m1 is no better than the baseline but writes longer answers, which the judge likes."""
    rng = np.random.default_rng(7)
    theta = np.array([0.0, 0.0, 0.7])
    gamma = np.array([2.0, 0.0, 0.0, 0.0])  # log-odds per unit of normalised length difference
    mean_len = {0: 0.0, 1: 0.6, 2: 0.0}

    def style_of(i, r):
        return np.array([mean_len[i] + 0.3 * r.standard_normal(),
                         0, 0, 0])

    first, second, y, style = _simulate(theta, 9000, rng, style_of=style_of, gamma=gamma)
    games = games_from_arrays(["base", "long", "good"], first, second, y, style=style)
    naive = fit_bt(games, "base")
    controlled = fit_bt(games, "base", style=True)
    assert naive.theta[1] > 0.8  # length passes for quality without control
    assert abs(controlled.theta[1] - 0.0) < 0.15
    assert abs(controlled.theta[2] - 0.7) < 0.15
    assert abs(controlled.gamma[0] - 2.0) < 0.3
    np.testing.assert_allclose(controlled.gamma[1:], 0.0, atol=0.3)


def test_bootstrap_ci_covers_the_truth_in_seeded_replicas():
    true_theta = 0.7
    covered = 0
    replicas = 50
    for seed in range(replicas):
        rng = np.random.default_rng(1000 + seed)
        n_q = 60
        first, second, y, group = [], [], [], []
        for q in range(n_q):
            # each question judged twice with positions swapped, as the arena does
            for a, b in ((0, 1), (1, 0)):
                p = _sigmoid(true_theta if a == 1 else -true_theta)
                first.append(a)
                second.append(b)
                y.append(float(rng.random() < p))
                group.append(q)
        games = games_from_arrays(["base", "cand"], first, second, y, group=group)
        res = bootstrap_bt(games, "base", samples=100, seed=seed)
        iv = res.theta["cand"]
        covered += iv.low <= true_theta <= iv.high
        assert iv.low <= iv.estimate <= iv.high
    assert covered >= 0.9 * replicas


def test_style_counts_and_diff():
    text = "# Title\n\nSome **bold** words.\n\n- one\n- two\n1. three\n\n```\n# not a header\n- nor a list\n```"
    c = style_counts(text)
    assert (c["headers"], c["lists"], c["bold"]) == (1, 3, 1)
    d = style_diff(c, {"length": 0, "headers": 0, "lists": 0, "bold": 0})
    np.testing.assert_allclose(d, [1, 1, 1, 1])
    np.testing.assert_allclose(style_diff(c, c), 0)
