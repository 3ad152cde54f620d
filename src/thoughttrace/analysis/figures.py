"""Figures of the analyses, drawn from the numbers in stats.json (so a figure never shows a number the
report's tables do not have). Matplotlib with the Agg backend: no display needed. Each figure is saved
as PNG (for the report and slides) and SVG (for papers).
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thoughttrace.data.intervals import SMALL_CELL

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


def _wrap(label: str, width: int = 16) -> str:
    """The whole label over as many lines as it needs (a cut label hides which type a row is)."""
    return "\n".join(textwrap.wrap(label, width=width, break_long_words=False, break_on_hyphens=False)) or label


#: how a cell or bar from fewer than SMALL_CELL items is drawn: greyed and hatched
SMALL_HATCH = "////"
SMALL_GREY = "#d9d9d9"


def lengths_figure(overview: dict[str, Any]) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    series = {"this dataset": overview["messages_per_conversation"], **overview.get("compare", {})}
    lengths = [int(k) for s in series.values() for k in s["histogram"]]
    max_len, min_len = max(lengths, default=1), min(lengths, default=1)
    # the axis spans the lengths that occur (not 1..max, which left most of it empty), at most 40 bars
    lo = max(1, min_len - 1)
    cap = min(max_len, lo + 39)
    xs = np.arange(lo, cap + 1)
    width = 0.8 / max(1, len(series))
    for i, (name, s) in enumerate(series.items()):
        hist = {int(k): v for k, v in s["histogram"].items()}
        ys = np.array([float(hist.get(int(x), 0)) for x in xs])
        ys[-1] += sum(v for k, v in hist.items() if k > cap)
        ys = 100 * ys / max(1, s["n"])
        small = s["n"] < SMALL_CELL
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, ys, width=width, color=PALETTE[i % len(PALETTE)],
               hatch=SMALL_HATCH if small else None, edgecolor="white" if small else None,
               label=f"{name} (n={s['n']:,}, median {s['median']:g})" + (", small" if small else ""))
    ax.set_xlim(lo - 0.6, cap + 0.6)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("messages per conversation" + (f" (last bar: \u2265{cap})" if max_len > cap else ""))
    ax.set_ylabel("share of conversations (%)")
    ax.legend(frameon=False)
    return fig


def shares_figure(section: dict[str, Any], title: str) -> Any:
    """Horizontal bars of label shares with the release's shares as markers."""
    plt = _plt()
    labels = [lab for lab in section["labels"] if section["counts"][lab] or section["release_shares"].get(lab)]
    fig, ax = plt.subplots(figsize=(6.8, 0.5 * max(3, len(labels)) + 1.1))
    ys = np.arange(len(labels))[::-1]
    n = section["n"]
    small = n < SMALL_CELL
    vals = [100 * section["shares"][lab] for lab in labels]
    ivs = [(section.get("intervals") or {}).get(lab) or {} for lab in labels]
    lows = [100 * iv["low"] if iv.get("low") is not None else v for iv, v in zip(ivs, vals)]
    highs = [100 * iv["high"] if iv.get("high") is not None else v for iv, v in zip(ivs, vals)]
    ax.barh(ys, vals, color=SMALL_GREY if small else PALETTE[0], hatch=SMALL_HATCH if small else None,
            edgecolor="#888888" if small else None,
            label="this dataset" + (f" (small: n < {SMALL_CELL})" if small else ""))
    ax.errorbar(vals, ys, xerr=[np.subtract(vals, lows), np.subtract(highs, vals)], fmt="none", ecolor="#333333",
                elinewidth=0.8, capsize=2, label="Wilson 95% CI")
    ref = [section["release_shares"].get(lab) for lab in labels]
    ry = [y for y, r in zip(ys, ref) if r is not None]
    rv = [100 * r for r in ref if r is not None]
    if rv:
        ax.scatter(rv, ry, marker="|", s=250, color="black", zorder=3, label="release")
    right = max([*highs, *rv, 1])
    for y, v, lab, hi, r in zip(ys, vals, labels, highs, ref):
        # text right of the bar, its interval and the release tick, so nothing overlaps it
        x = max(hi, 100 * r if r is not None else 0) + 0.02 * right
        ax.text(x, y, f"{v:.1f}% ({section['counts'][lab]:,}/{n:,})", va="center", fontsize=8)
    ax.set_yticks(ys, [_wrap(lab, 26) for lab in labels])
    ax.set_xlabel("share (%)")
    ax.set_xlim(0, right * 1.45)
    ax.set_title(f"{title} (n={n:,}" + (", small" if small else "") + ")")
    ax.legend(frameon=False, loc="lower right", fontsize=7)
    return fig


def heatmap_figure(section: dict[str, Any], group: str, title: str, max_groups: int = 20) -> Any:
    """Rows = groups (model or domain), columns = labels, cells = share within the row."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    groups = list(section[group].items())[:max_groups]
    labels = section["labels"]
    row_labels = [_wrap(f"{name} (n={g['n']:,}" + (", small" if g["n"] < SMALL_CELL else "") + ")", 24)
                  for name, g in groups]
    lines = max([lab.count("\n") + 1 for lab in row_labels] or [1])
    fig, ax = plt.subplots(figsize=(0.8 * len(labels) + 2.9, (0.2 + 0.15 * lines) * max(2, len(groups)) + 2.1))
    if not groups:
        ax.text(0.5, 0.5, "no labelled thoughts", ha="center", va="center")
        ax.set_axis_off()
        return fig
    mat = np.array([[100 * g["shares"][lab] for lab in labels] for _name, g in groups])
    small = np.array([g["n"] < SMALL_CELL for _name, g in groups])
    big_rows = np.where(small[:, None], np.nan, mat)  # coloured as findings
    small_rows = np.where(small[:, None], mat, np.nan)  # greyed (and hatched): too few thoughts to read
    vmax = max(1.0, float(np.nanmax(big_rows))) if (~small).any() else 100.0
    im = ax.imshow(np.ma.masked_invalid(big_rows), aspect="auto", cmap="Blues", vmin=0, vmax=vmax)
    if small.any():
        ax.imshow(np.ma.masked_invalid(small_rows), aspect="auto", cmap="Greys", vmin=0, vmax=250)
    for i, (_name, g) in enumerate(groups):
        if small[i]:
            ax.add_patch(Rectangle((-0.5, i - 0.5), len(labels), 1, facecolor="none", edgecolor="#b0b0b0",
                                   hatch="//", linewidth=0, zorder=1))
        for j, lab in enumerate(labels):
            dark = not small[i] and mat[i, j] > 0.6 * vmax
            ax.text(j, i, f"{mat[i, j]:.0f}%\n{g['counts'][lab]:,}/{g['n']:,}", ha="center", va="center",
                    fontsize=7, zorder=2, color="white" if dark else "black",
                    bbox=None if not small[i] else {"facecolor": "white", "alpha": 0.75, "edgecolor": "none",
                                                    "pad": 1.0})
    ax.set_xticks(range(len(labels)), [_wrap(lab, 12) for lab in labels], fontsize=8)
    ax.set_yticks(range(len(groups)), row_labels, fontsize=8)
    ax.set_title(title + (f"\n(hatched grey: rows of fewer than {SMALL_CELL} thoughts, too few to read)"
                          if small.any() else ""), fontsize=9)
    if (~small).any():  # a scale only for the coloured rows (greyed rows are read from their numbers)
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
        ax.stackplot(xs, ys, labels=[_wrap(lab, 24) for lab in labels],
                     colors=PALETTE[: len(labels)] if len(labels) <= len(PALETTE) else None, alpha=0.9)
    ax.set_xticks(xs, [f"{n}\n(n={s['n']}" + (", small" if s["n"] < SMALL_CELL else "") + ")"
                       for n, s in zip(names, section["stages"])])
    for x, s in zip(xs, section["stages"]):
        if s["n"] < SMALL_CELL:  # a stage of few thoughts: its shares are shaded as unreliable
            ax.axvspan(max(0, x - 0.5), min(len(names) - 1, x + 0.5), facecolor="none", edgecolor="#666666",
                       hatch="..", linewidth=0, zorder=3)
    ax.set_xlim(0, len(names) - 1)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share (%)")
    ax.set_xlabel("position in the conversation")
    ax.set_title(title + (f"\n(dotted: a stage of fewer than {SMALL_CELL} thoughts, too few to read)"
                          if any(s["n"] < SMALL_CELL for s in section["stages"]) else ""), fontsize=9)
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
        ax.bar(xs, vals, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=_wrap(lab, 24))
        bottom += vals
    ax.set_xticks(xs, [f"{r['turn']}\n(n={r['n']}" + (", small" if r["n"] < SMALL_CELL else "") + ")" for r in rows])
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
