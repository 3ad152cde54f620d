"""Figures of the analyses, drawn from the numbers in stats.json (so a figure never shows a number the
report's tables do not have). Matplotlib with the Agg backend: no display needed. Each figure is saved
as PNG (for the report and slides) and SVG (for papers).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 130, "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "svg.fonttype": "none", "svg.hashsalt": "thoughttrace"})
    return plt


@dataclass
class FigureStore:
    """Saves figures as PNG + SVG in `out_dir/figures` and remembers them for the report."""

    out_dir: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    png_b64: dict[str, str] = field(default_factory=dict)

    def save(self, fig: Any, fig_id: str, title: str, section: str, caption: str = "") -> None:
        plt = _plt()
        folder = self.out_dir / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        png, svg = folder / f"{fig_id}.png", folder / f"{fig_id}.svg"
        fig.tight_layout()
        fig.savefig(png, format="png", metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None})
        plt.close(fig)
        self.png_b64[fig_id] = base64.b64encode(png.read_bytes()).decode("ascii")
        self.entries.append({"id": fig_id, "title": title, "section": section, "caption": caption,
                             "png": f"figures/{fig_id}.png", "svg": f"figures/{fig_id}.svg"})


def _short(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"


def lengths_figure(overview: dict[str, Any]) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    series = {"this dataset": overview["messages_per_conversation"], **overview.get("compare", {})}
    max_len = max((int(k) for s in series.values() for k in s["histogram"]), default=1)
    cap = min(max_len, 40)
    xs = np.arange(1, cap + 1)
    width = 0.8 / max(1, len(series))
    for i, (name, s) in enumerate(series.items()):
        hist = {int(k): v for k, v in s["histogram"].items()}
        ys = np.array([float(hist.get(int(x), 0)) for x in xs])
        ys[-1] += sum(v for k, v in hist.items() if k > cap)
        ys = ys / max(1, s["n"])
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, ys, width=width, color=PALETTE[i % len(PALETTE)],
               label=f"{name} (median {s['median']:g})")
    ax.set_xlabel("messages per conversation" + (f" (last bar: \u2265{cap})" if max_len > cap else ""))
    ax.set_ylabel("share of conversations")
    ax.legend(frameon=False)
    return fig


def shares_figure(section: dict[str, Any], title: str) -> Any:
    """Horizontal bars of label shares with the release's shares as markers."""
    plt = _plt()
    labels = [lab for lab in section["labels"] if section["counts"][lab] or section["release_shares"].get(lab)]
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * max(3, len(labels)) + 0.9))
    ys = np.arange(len(labels))[::-1]
    vals = [100 * section["shares"][lab] for lab in labels]
    ax.barh(ys, vals, color=PALETTE[0], label="this dataset")
    ref = [section["release_shares"].get(lab) for lab in labels]
    ry = [y for y, r in zip(ys, ref) if r is not None]
    rv = [100 * r for r in ref if r is not None]
    if rv:
        ax.scatter(rv, ry, marker="|", s=250, color="black", zorder=3, label="release")
    for y, v, lab in zip(ys, vals, labels):
        ax.text(v + 0.5, y, f"{v:.1f}% (n={section['counts'][lab]})", va="center", fontsize=8)
    ax.set_yticks(ys, [_short(lab, 32) for lab in labels])
    ax.set_xlabel("share (%)")
    ax.set_xlim(0, max([*vals, *rv, 1]) * 1.35)
    ax.set_title(f"{title} (n={section['n']})")
    ax.legend(frameon=False, loc="lower right")
    return fig


def heatmap_figure(section: dict[str, Any], group: str, title: str, max_groups: int = 20) -> Any:
    """Rows = groups (model or domain), columns = labels, cells = share within the row."""
    plt = _plt()
    groups = list(section[group].items())[:max_groups]
    labels = section["labels"]
    fig, ax = plt.subplots(figsize=(0.75 * len(labels) + 3.2, 0.36 * max(2, len(groups)) + 1.9))
    if not groups:
        ax.text(0.5, 0.5, "no labelled thoughts", ha="center", va="center")
        ax.set_axis_off()
        return fig
    mat = np.array([[100 * g["shares"][lab] for lab in labels] for _name, g in groups])
    im = ax.imshow(mat, aspect="auto", cmap="Blues", vmin=0, vmax=max(1.0, float(mat.max())))
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            ax.text(j, i, f"{mat[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if mat[i, j] > 0.6 * mat.max() else "black")
    ax.set_xticks(range(len(labels)), [_short(lab, 18) for lab in labels], rotation=35, ha="right")
    ax.set_yticks(range(len(groups)), [f"{_short(n, 26)} (n={g['n']})" for n, g in groups])
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="share within row (%)", fraction=0.04)
    return fig


def stages_figure(stages: dict[str, Any], kind: str, title: str) -> Any:
    """Stacked area (flow) chart of label shares over the conversation stages."""
    plt = _plt()
    section = stages[kind]
    names = stages["stage_names"]
    labels = section["labels"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    xs = np.arange(len(names))
    ys = np.array([[100 * s["shares"][lab] for s in section["stages"]] for lab in labels]) if labels else np.zeros((0, len(names)))
    if ys.size:
        ax.stackplot(xs, ys, labels=[_short(lab, 30) for lab in labels],
                     colors=PALETTE[: len(labels)] if len(labels) <= len(PALETTE) else None, alpha=0.9)
    ax.set_xticks(xs, [f"{n}\n(n={s['n']})" for n, s in zip(names, section["stages"])])
    ax.set_xlim(0, len(names) - 1)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share (%)")
    ax.set_xlabel("position in the conversation")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def relations_figure(relations: dict[str, Any]) -> Any:
    plt = _plt()
    rows = relations["by_turn"]
    labels = relations["labels"]
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    xs = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for i, lab in enumerate(labels):
        vals = np.array([100 * r["shares"].get(lab, 0.0) for r in rows])
        ax.bar(xs, vals, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=lab)
        bottom += vals
    ax.set_xticks(xs, [f"{r['turn']}\n(n={r['n']})" for r in rows])
    ax.set_xlabel("user turn")
    ax.set_ylabel("share (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Relation of each user turn to the previous one")
    ax.legend(frameon=False, fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return fig


def distances_figure(distances: dict[str, np.ndarray], labels: dict[str, str]) -> Any:
    plt = _plt()
    kinds = [k for k in distances if distances[k].size]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    data = [distances[k] for k in kinds]
    if data:
        if all(d.size > 1 for d in data):
            parts = ax.violinplot(data, showmedians=True)
            for i, body in enumerate(parts["bodies"]):  # type: ignore[attr-defined]
                body.set_facecolor(PALETTE[i % len(PALETTE)])
        else:
            for i, d in enumerate(data):
                ax.scatter(np.full(d.size, i + 1), d, color=PALETTE[i % len(PALETTE)])
    ax.set_xticks(range(1, len(kinds) + 1), [f"{labels[k]}\n(n={distances[k].size})" for k in kinds], fontsize=8)
    ax.set_ylabel("1 - cosine similarity")
    ax.set_title("Semantic shift")
    return fig


def projection_figure(coords: np.ndarray, kinds: Sequence[str], labels: dict[str, str], method: str) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    order = list(dict.fromkeys(kinds))
    for i, k in enumerate(order):
        mask = np.array([x == k for x in kinds])
        ax.scatter(coords[mask, 0], coords[mask, 1], s=8, alpha=0.6, color=PALETTE[i % len(PALETTE)],
                   label=f"{labels[k]} (n={int(mask.sum())})")
    ax.set_title(f"Difference vectors ({method.upper()})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, fontsize=7)
    return fig
