"""What a reviewer circles in the report: cut labels, heatmap cells without n, small rows coloured like findings,
a half-empty histogram axis, small table cells that look like any other. Drawn from real analyses (matplotlib
Agg; the HTML in headless Chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thoughttrace.analysis import AnalysisOptions, analyze_file
from thoughttrace.analysis import figures as F
from thoughttrace.data.intervals import SMALL_CELL, share_cell

LABELS = ["Context Grounding & Constraints", "Task Motivation & Goal", "Style Expectation"]


def _table(counts: list[int]) -> dict[str, Any]:
    n = sum(counts)
    return {"n": n, "counts": dict(zip(LABELS, counts)), "shares": {lab: c / n for lab, c in zip(LABELS, counts)},
            "intervals": {lab: share_cell(c, n) for lab, c in zip(LABELS, counts)}, "small": n < SMALL_CELL}


@pytest.fixture(scope="module")
def section() -> dict[str, Any]:
    return {"labels": LABELS, **_table([30, 10, 5]), "release_shares": {LABELS[0]: 0.13},
            "by_model": {"A model whose name is far longer than twenty-two characters": _table([25, 10, 5]),
                         "tiny": _table([4, 0, 0])}}


def _text(t: Any) -> str:
    return " ".join(t.get_text().split())


def test_heatmap_shows_full_labels_n_in_every_cell_and_greys_small_rows(section: dict[str, Any]) -> None:
    from matplotlib.patches import Rectangle

    fig = F.heatmap_figure(section, "by_model", "Reasons by model")
    ax = fig.axes[0]
    assert [_text(t) for t in ax.get_xticklabels()] == LABELS  # wrapped, never cut
    rows = [_text(t) for t in ax.get_yticklabels()]
    assert rows == ["A model whose name is far longer than twenty-two characters (n=40)", "tiny (n=4, small)"]
    cells = [t.get_text() for t in ax.texts]
    assert "62%\n25/40" in cells and "100%\n4/4" in cells and "0%\n0/4" in cells
    assert len(cells) == 2 * len(LABELS)
    hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
    assert len(hatched) == 1 and hatched[0].get_y() == pytest.approx(0.5)  # row 1 ("tiny") only
    cmaps = [im.get_cmap().name for im in ax.images]
    assert cmaps == ["Blues", "Greys"]  # the small row is not on the colour scale of findings
    blues, greys = (im.get_array() for im in ax.images)
    assert blues.mask[1].all() and not blues.mask[0].any() and greys.mask[0].all() and not greys.mask[1].any()
    assert len(fig.axes) == 2  # a colour bar for the coloured row


def test_shares_figure_writes_k_of_n_with_full_labels(section: dict[str, Any]) -> None:
    fig = F.shares_figure(section, "Reason types")
    ax = fig.axes[0]
    assert sorted(_text(t) for t in ax.get_yticklabels()) == sorted(LABELS)
    assert {t.get_text() for t in ax.texts} >= {"66.7% (30/45)", "22.2% (10/45)"}


def test_lengths_histogram_spans_the_lengths_that_occur() -> None:
    ov = {"messages_per_conversation": {"n": 3, "histogram": {"8": 2, "12": 1}, "median": 8.0}, "compare": {}}
    ax = F.lengths_figure(ov).axes[0]
    lo, hi = ax.get_xlim()
    assert 6 <= lo < 8 and 12 < hi < 13.5  # not 0..12 with the left two thirds empty
    assert "n=3" in ax.get_legend().get_texts()[0].get_text()


@pytest.mark.browser
def test_small_cells_are_greyed_in_the_report(page: Any, tmp_path: Path, examples_path: Path) -> None:
    analyze_file(examples_path, tmp_path, AnalysisOptions(embeddings=False))
    page.goto((tmp_path / "report.html").resolve().as_uri())
    small = page.locator("table.shares-reasons-by-model td.small")
    assert small.count() > 0 and all(t.endswith(")") and "*" in t for t in small.all_inner_texts())
    grey = small.first.evaluate("e => getComputedStyle(e).color")
    plain = page.locator("table.shares-reasons-by-model td").first.evaluate("e => getComputedStyle(e).color")
    assert grey != plain
    assert page.locator("section#types p.note span.small").count() == 1
    # every small share of the page is greyed: no '*' cell outside td.small
    stars = page.eval_on_selector_all("td", "els => els.filter(e => e.innerText.includes('*') && "
                                             "!e.classList.contains('small')).length")
    assert stars == 0
