"""Semantic shift: distances, one-sided tests and effect sizes on planted geometry (fake embedder)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from thoughttrace.analysis import PairCollector, semantic_shift
from thoughttrace.analysis.semantic import mann_whitney, project_2d, wilcoxon_paired
from thoughttrace.data import Conversation


def _conversations(n: int, thoughts_near: bool) -> tuple[list[Conversation], dict[str, str]]:
    """Each conversation: u0 a0 u1 a1 u2. Consecutive user messages are planted close (or far) and thoughts
    far (or close) from their messages."""
    near: dict[str, str] = {}
    convs = []
    for i in range(n):
        u = [f"conv{i} user message {k}" for k in range(3)]
        reasons = [f"conv{i} reason {k}" for k in range(3)]
        reactions = [f"conv{i} reaction {k}" for k in range(2)]
        if thoughts_near:
            for k in range(3):
                near[reasons[k]] = u[k]
            for k in range(2):
                near[reactions[k]] = u[k + 1]
        else:
            near[u[1]] = u[0]
            near[u[2]] = u[0]
        msgs = []
        for k in range(3):
            msgs.append({"id": f"u{k}", "type": "user", "content": u[k], "reasons": [{"content": reasons[k]}]})
            if k < 2:
                msgs.append({"id": f"a{k}", "type": "assistant", "content": f"answer {i}-{k}",
                             "reactions": [{"content": reactions[k]}]})
        convs.append(Conversation.model_validate({"id": f"c{i}", "messages": msgs}))
    return convs, near


def _run(embedder_cls, thoughts_near: bool):
    convs, near = _conversations(40, thoughts_near)
    coll = PairCollector()
    for c in convs:
        coll.add(c)
    return coll, semantic_shift(coll, embedder_cls(near=near), projection="pca")


def test_pairs_are_collected_per_kind(embedder_cls) -> None:
    coll, _ = _run(embedder_cls, thoughts_near=False)
    assert coll.pairs["message-reason"].seen == 40 * 3
    assert coll.pairs["reaction-next"].seen == 40 * 2
    assert coll.pairs["consecutive"].seen == 40 * 2
    # the reaction to a0 is paired with the NEXT user message u1
    assert coll.pairs["reaction-next"].b[0] == "conv0 user message 1"


def test_claim_supported_when_thoughts_shift_more(embedder_cls) -> None:
    _, (numbers, arrays) = _run(embedder_cls, thoughts_near=False)
    assert numbers["pairs"]["consecutive"]["mean"] < 0.2
    assert numbers["pairs"]["message-reason"]["mean"] > 0.7
    for t in numbers["tests"]:
        assert t["supports_release_claim"] is True
        assert t["unpaired"]["rank_biserial"] > 0.9
        assert t["paired"]["p_value"] < 1e-3
    assert numbers["projection"]["method"] == "pca"
    assert arrays["coords"].shape == (numbers["projection"]["points"], 2)


def test_claim_not_supported_when_thoughts_are_close(embedder_cls) -> None:
    _, (numbers, _) = _run(embedder_cls, thoughts_near=True)
    for t in numbers["tests"]:
        assert t["supports_release_claim"] is False
        assert t["unpaired"]["rank_biserial"] < 0


def test_mann_whitney_effect_size_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(1, 1, 50), rng.normal(0, 1, 40)
    res = mann_whitney(x, y)
    ref = mannwhitneyu(x, y, alternative="greater")
    assert res["p_value"] == pytest.approx(ref.pvalue)
    # rank-biserial = P(x > y) - P(x < y)  (Cliff's delta)
    delta = np.mean(np.sign(x[:, None] - y[None, :]))
    assert res["rank_biserial"] == pytest.approx(delta)


def test_small_samples_give_no_p_value() -> None:
    assert mann_whitney(np.array([0.1]), np.array([0.2, 0.3]))["p_value"] is None
    assert wilcoxon_paired(np.array([0.1, 0.2]), np.array([0.0, 0.1]))["p_value"] is None


def test_reservoir_cap_bounds_memory() -> None:
    convs, _ = _conversations(50, False)
    coll = PairCollector(max_pairs=10, seed=1)
    for c in convs:
        coll.add(c)
    assert len(coll.pairs["message-reason"].a) == 10
    assert coll.pairs["message-reason"].seen == 150


def test_projection_fallback_and_errors() -> None:
    v = np.random.default_rng(1).standard_normal((5, 8))
    coords, method = project_2d(v, "auto")
    assert method == "pca" and coords.shape == (5, 2)
    with pytest.raises(ValueError):
        project_2d(v, "tsne")
