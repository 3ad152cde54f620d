"""Analysis 5: semantic shift between what users type and what they think.

Three kinds of pairs, each keyed by the later user message (so they can also be compared paired):
- `message-reason`: a user message and a reason written for it;
- `reaction-next`: a reaction to an assistant message and the user message that follows it;
- `consecutive`: two consecutive user messages (the baseline).
Distance = 1 - cosine of sentence embeddings (`thoughttrace.llm.embeddings`). The release's claim is that
the first two shift MORE than consecutive messages, so each is tested against the baseline, one-sided
("greater"): Mann-Whitney U over all pairs with the rank-biserial correlation as effect size
(r = 2U/(n1 n2) - 1, equal to Cliff's delta; > 0 means larger distances), and, where the same user
message has both kinds of pair, a Wilcoxon signed-rank test on the paired differences with the
matched-pairs rank-biserial correlation. The difference vectors (emb(a) - emb(b)) are projected to 2-D
with UMAP; with fewer than `umap_min_points` points (UMAP needs a neighbourhood) PCA is used instead,
and the output says which.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thoughttrace.data import Conversation

PAIR_KINDS = ("message-reason", "reaction-next", "consecutive")
BASELINE = "consecutive"
PAIR_LABELS = {"message-reason": "message \u2194 its reason", "reaction-next": "reaction \u2194 next message",
               "consecutive": "consecutive user messages"}


@dataclass
class Pairs:
    """Text pairs of one kind; reservoir-sampled to `cap` so memory stays bounded on huge files."""

    cap: int | None
    rng: random.Random
    a: list[str] = field(default_factory=list)
    b: list[str] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    seen: int = 0

    def add(self, a: str, b: str, key: str) -> None:
        self.seen += 1
        if self.cap is None or len(self.a) < self.cap:
            self.a.append(a)
            self.b.append(b)
            self.key.append(key)
            return
        j = self.rng.randrange(self.seen)
        if j < self.cap:
            self.a[j], self.b[j], self.key[j] = a, b, key


class PairCollector:
    """Collects the three kinds of text pairs while the conversations stream by."""

    def __init__(self, max_pairs: int | None = None, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.pairs = {k: Pairs(max_pairs, random.Random(rng.random())) for k in PAIR_KINDS}

    def add(self, conv: Conversation) -> None:
        msgs = conv.messages
        prev_user = None
        for i, m in enumerate(msgs):
            if m.type == "user":
                key = f"{conv.id}\x1f{m.id}"
                for t in m.reasons or ():
                    if t.content.strip() and m.content.strip():
                        self.pairs["message-reason"].add(m.content, t.content, key)
                if prev_user is not None and prev_user.content.strip() and m.content.strip():
                    self.pairs["consecutive"].add(prev_user.content, m.content, key)
                prev_user = m
            else:
                nxt = next((n for n in msgs[i + 1:] if n.type == "user"), None)
                if nxt is None or not nxt.content.strip():
                    continue
                for t in m.reactions or ():
                    if t.content.strip():
                        self.pairs["reaction-next"].add(t.content, nxt.content, f"{conv.id}\x1f{nxt.id}")


def describe(d: np.ndarray) -> dict[str, Any]:
    if d.size == 0:
        return {"n": 0}
    q = np.quantile(d, [0.25, 0.5, 0.75])
    return {"n": int(d.size), "mean": float(d.mean()), "std": float(d.std(ddof=1)) if d.size > 1 else 0.0,
            "q1": float(q[0]), "median": float(q[1]), "q3": float(q[2]), "min": float(d.min()), "max": float(d.max())}


def mann_whitney(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One-sided test that x tends to be larger than y, with the rank-biserial correlation."""
    from scipy.stats import mannwhitneyu

    if x.size < 2 or y.size < 2:
        return {"test": "mann-whitney-u", "n1": int(x.size), "n2": int(y.size), "p_value": None,
                "note": "too few pairs for a test"}
    res = mannwhitneyu(x, y, alternative="greater")
    u = float(res.statistic)
    r = 2 * u / (x.size * y.size) - 1
    return {"test": "mann-whitney-u", "alternative": "greater", "n1": int(x.size), "n2": int(y.size),
            "U": u, "p_value": float(res.pvalue), "rank_biserial": float(r), "effect": _magnitude(r)}


def wilcoxon_paired(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Signed-rank test on paired distances x - y, one-sided (x larger), matched-pairs rank-biserial."""
    from scipy.stats import rankdata, wilcoxon

    diff = x - y
    diff = diff[diff != 0]
    if diff.size < 5:
        return {"test": "wilcoxon-signed-rank", "n": int(diff.size), "p_value": None,
                "note": "fewer than 5 non-zero paired differences"}
    res = wilcoxon(diff, alternative="greater")
    ranks = rankdata(np.abs(diff))
    r = float((ranks[diff > 0].sum() - ranks[diff < 0].sum()) / ranks.sum())
    return {"test": "wilcoxon-signed-rank", "alternative": "greater", "n": int(diff.size),
            "W": float(res.statistic), "p_value": float(res.pvalue), "rank_biserial": r, "effect": _magnitude(r),
            "median_difference": float(np.median(x - y))}


def _magnitude(r: float) -> str:
    a = abs(r)
    # Vargha & Delaney style thresholds expressed on the rank-biserial scale
    return "negligible" if a < 0.11 else "small" if a < 0.28 else "medium" if a < 0.43 else "large"


def project_2d(vectors: np.ndarray, method: str = "auto", seed: int = 0, umap_min_points: int = 30) -> tuple[np.ndarray, str]:
    """2-D coordinates of the difference vectors; `auto` = UMAP when there are enough points, else PCA."""
    n = vectors.shape[0]
    if n == 0:
        return np.zeros((0, 2)), "none"
    if method == "auto":
        method = "umap" if n >= umap_min_points else "pca"
    if method == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, metric="cosine",
                            n_jobs=1)
        return np.asarray(reducer.fit_transform(vectors)), "umap"
    if method != "pca":
        raise ValueError(f"projection must be auto, umap or pca (got {method!r})")
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    if n == 1:
        return np.zeros((1, 2)), "pca"
    u, s, _vt = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :2] * s[:2]
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords, "pca"


def semantic_shift(
    collector: PairCollector,
    embedder: Any,
    *,
    projection: str = "auto",
    max_projection_points: int = 3000,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Distances, tests and projection. Returns (numbers for stats.json, arrays for the figures)."""
    distances: dict[str, np.ndarray] = {}
    diffs: dict[str, np.ndarray] = {}
    keys: dict[str, list[str]] = {}
    # one embedding call over the distinct texts of every pair kind (a user message sits in several pairs)
    index: dict[str, int] = {}
    for p in collector.pairs.values():
        for t in (*p.a, *p.b):
            index.setdefault(t, len(index))
    vectors = embedder.embed(list(index), progress=progress) if index else np.zeros((0, 1), dtype=np.float32)
    for kind, p in collector.pairs.items():
        if not p.a:
            distances[kind] = np.zeros(0, dtype=np.float32)
            diffs[kind] = np.zeros((0, vectors.shape[1]), dtype=np.float32)
            keys[kind] = []
            continue
        va = vectors[[index[t] for t in p.a]]
        vb = vectors[[index[t] for t in p.b]]
        distances[kind] = np.clip(1.0 - np.einsum("ij,ij->i", va, vb), 0.0, 2.0).astype(np.float64)
        diffs[kind] = va - vb
        keys[kind] = p.key

    tests: list[dict[str, Any]] = []
    base = distances[BASELINE]
    for kind in PAIR_KINDS:
        if kind == BASELINE:
            continue
        entry: dict[str, Any] = {"pair": kind, "baseline": BASELINE,
                                 "unpaired": mann_whitney(distances[kind], base)}
        # paired: mean distance per later user message, for messages with both kinds of pair
        mean_k = _mean_by_key(keys[kind], distances[kind])
        mean_b = _mean_by_key(keys[BASELINE], base)
        common = sorted(set(mean_k) & set(mean_b))
        entry["paired"] = wilcoxon_paired(np.array([mean_k[c] for c in common]), np.array([mean_b[c] for c in common]))
        u = entry["unpaired"]
        entry["supports_release_claim"] = bool(
            u.get("p_value") is not None and u["p_value"] < 0.05 and u["rank_biserial"] > 0
        )
        tests.append(entry)

    rng = np.random.default_rng(seed)
    pts, kinds = [], []
    per_kind = max(1, max_projection_points // len(PAIR_KINDS))
    for kind in PAIR_KINDS:
        d = diffs[kind]
        if d.shape[0] == 0:
            continue
        idx = rng.choice(d.shape[0], size=min(per_kind, d.shape[0]), replace=False)
        pts.append(d[np.sort(idx)])
        kinds += [kind] * len(idx)
    coords, method = project_2d(np.concatenate(pts) if pts else np.zeros((0, 2)), projection, seed)
    numbers = {
        "available": True,
        "distance": "1 - cosine (L2-normalised sentence embeddings)",
        "pairs": {k: {"label": PAIR_LABELS[k], "total_seen": collector.pairs[k].seen, **describe(distances[k])}
                  for k in PAIR_KINDS},
        "tests": tests,
        "projection": {"method": method, "points": int(coords.shape[0]),
                       "note": "UMAP of difference vectors" if method == "umap"
                       else "PCA of difference vectors (too few points for UMAP, or chosen)"},
    }
    arrays = {"distances": distances, "coords": coords, "coord_kinds": kinds}
    return numbers, arrays


def _mean_by_key(keys: list[str], values: np.ndarray) -> dict[str, float]:
    acc: dict[str, list[float]] = defaultdict(list)
    for k, v in zip(keys, values):
        acc[k].append(float(v))
    return {k: float(np.mean(v)) for k, v in acc.items()}
