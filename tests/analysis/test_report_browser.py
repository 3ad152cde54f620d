"""report.html in headless Chromium: it loads offline, shows every figure stats.json lists, no console errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thoughttrace.analysis import AnalysisOptions, analyze_file, load_label_records

pytestmark = pytest.mark.browser


@pytest.fixture
def report_dir(tmp_path: Path, examples_path: Path, hash_embedder) -> Path:
    labels = tmp_path / "rel.jsonl"
    recs = [{"kind": "relation", "conversation_id": c, "message_id": m, "index": None, "label": lab, "status": "ok"}
            for c, m, lab in [("health-1", "health-1-m2", "Deepen"), ("health-1", "health-1-m4", "Deepen"),
                              ("culture-2", "culture-2-m2", "Variant"), ("education-2", "education-2-m2", "New request")]]
    labels.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "report"
    analyze_file(examples_path, out, AnalysisOptions(projection="pca"), labels=load_label_records([labels]),
                 embedder=hash_embedder)
    return out


def test_report_renders_in_chromium(page, report_dir: Path, artifacts_dir: Path) -> None:
    stats = json.loads((report_dir / "stats.json").read_text())
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url))
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto((report_dir / "report.html").resolve().as_uri())
    page.wait_for_load_state("load")

    assert page.title() == "ThoughtTrace analysis"
    figure_ids = [f["id"] for f in stats["figures"]]
    assert len(figure_ids) >= 10
    imgs = page.locator("img[data-figure]")
    assert imgs.count() == len(figure_ids)
    shown = [imgs.nth(i).get_attribute("data-figure") for i in range(imgs.count())]
    assert sorted(shown) == sorted(figure_ids)
    # every image decoded (a broken base64 payload has naturalWidth 0)
    widths = page.eval_on_selector_all("img[data-figure]", "els => els.map(e => e.naturalWidth)")
    assert all(w > 100 for w in widths)
    for section in ("overview", "types", "stages", "relations", "semantic"):
        assert page.locator(f"section#{section} h2").is_visible()
    assert page.locator("table.table1 td").first.inner_text() == "conversations"
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests)  # nothing from the network
    page.screenshot(path=str(artifacts_dir / "analysis_report.png"), full_page=False)
    page.locator("section#semantic").screenshot(path=str(artifacts_dir / "analysis_report_semantic.png"))
