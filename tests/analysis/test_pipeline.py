"""`analyze` end to end: the released examples, planted synthetic data, label overlays, the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from thoughttrace.analysis import AnalysisOptions, analyze_conversations, analyze_file, load_label_records
from thoughttrace.cli.main import cli
from thoughttrace.data import write_conversations
from thoughttrace.data.synthetic import generate_conversations


def _figure_files_exist(out: Path, stats: dict) -> None:
    for f in stats["figures"]:
        assert (out / f["png"]).stat().st_size > 1000
        svg = (out / f["svg"]).read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_examples_end_to_end(examples_path: Path, tmp_path: Path, hash_embedder) -> None:
    res = analyze_file(examples_path, tmp_path, AnalysisOptions(projection="pca"), embedder=hash_embedder)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["format_version"] == 1
    t1 = stats["overview"]["table1"]
    assert (t1["conversations"], t1["messages"], t1["thoughts"]) == (3, 28, 30)
    assert stats["overview"]["messages_per_conversation"]["median"] == 8
    reasons = stats["thought_types"]["reasons"]
    assert reasons["counts"]["Task Continuation"] == 5
    assert reasons["counts"]["Task Motivation & Goal"] == 4
    # stage 0% holds the reasons of each conversation's first user message
    first = stats["stages"]["reasons"]["stages"][0]["counts"]
    assert first["Social & Others"] == 1 and first["Content Expectation"] == 1 and first["Task Motivation & Goal"] == 1
    assert stats["relations"]["available"] is False
    assert stats["semantic"]["available"] is True
    ids = [f["id"] for f in stats["figures"]]
    assert {"messages_per_conversation", "reason_shares", "stages_reasons", "semantic_distances",
            "semantic_projection"} <= set(ids)
    _figure_files_exist(tmp_path, stats)
    html = res.report_path.read_text()
    assert len(re.findall(r"<img [^>]*data-figure=", html)) == len(ids)
    assert "http://" not in html and "https://" not in html  # nothing fetched: readable offline
    # shares by model and by domain as tables with counts (Grok's conversation opens with Social & Others greetings)
    by_model = re.search(r'<table class="shares-reasons-by-model">.*?</table>', html, re.S)
    assert by_model is not None and "Grok 4.20" in by_model.group(0)
    grok_row = re.search(r"<tr><td>Grok 4\.20</td>.*?</tr>", by_model.group(0)).group(0)
    grok = stats["thought_types"]["reasons"]["by_model"]["Grok 4.20"]
    assert f"({grok['counts']['Social & Others']})" in grok_row and grok["counts"]["Social & Others"] >= 1
    assert '<table class="shares-reactions-by-domain">' in html


def test_planted_synthetic_data_reach_the_report(tmp_path: Path) -> None:
    planted = {"Task Motivation & Goal": 0.25, "Style Expectation": 0.75}
    convs = generate_conversations(800, seed=11, reason_shares=planted)
    res = analyze_conversations(convs, tmp_path, AnalysisOptions(embeddings=False, figures=False))
    shares = res.stats["thought_types"]["reasons"]["shares"]
    assert shares["Style Expectation"] == pytest.approx(0.75, abs=0.04)
    assert res.stats["semantic"]["available"] is False
    assert res.stats["figures"] == []


def test_label_overlay_and_relations(tmp_path: Path, examples_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    recs = [
        {"kind": "reason", "conversation_id": "health-1", "message_id": "health-1-m0", "index": 0,
         "label": "Style Expectation", "status": "ok"},
        {"kind": "reason", "conversation_id": "health-1", "message_id": "health-1-m2", "index": 0,
         "label": "Style Expectation", "status": "unlabelled"},
        {"kind": "relation", "conversation_id": "health-1", "message_id": "health-1-m2", "index": None,
         "label": "Deepen", "status": "ok"},
        {"kind": "domain", "conversation_id": "culture-2", "message_id": None, "index": None,
         "label": "Technology", "status": "ok"},
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in recs))
    overlay = load_label_records([labels])
    assert len(overlay) == 3  # the unlabelled record is ignored, never used as a label
    res = analyze_file(examples_path, tmp_path / "out", AnalysisOptions(embeddings=False), labels=overlay)
    reasons = res.stats["thought_types"]["reasons"]
    assert reasons["counts"]["Style Expectation"] == 1
    assert reasons["counts"]["Task Motivation & Goal"] == 3
    assert "Technology" in res.stats["thought_types"]["reasons"]["by_domain"]
    rel = res.stats["relations"]
    assert rel["available"] is True
    turn2 = next(r for r in rel["by_turn"] if r["turn"] == 2)
    assert turn2["counts"]["Deepen"] == 1
    assert any(f["id"] == "relations_by_turn" for f in res.stats["figures"])


def test_empty_input_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no conversations"):
        analyze_file(empty, tmp_path / "out", AnalysisOptions(embeddings=False))


def test_cli_analyze(tmp_path: Path, examples_path: Path) -> None:
    short = tmp_path / "short.jsonl"
    write_conversations(generate_conversations(30, seed=1, length_range=(2, 2)), short)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["analyze", str(examples_path), "--out", str(out), "--no-embeddings",
                                 "--compare", f"short={short}", "--stages", "5"])
    assert r.exit_code == 0, r.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["overview"]["compare"]["short"]["median"] == 2
    assert stats["stages"]["stage_names"] == ["0%", "25%", "50%", "75%", "100%"]
    assert (out / "report.html").exists()


def test_cli_bad_input_exits_1_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "messages": [{"id": "m", "type": "robot", "content": "hi"}]}\n')
    r = CliRunner().invoke(cli, ["analyze", str(bad), "--out", str(tmp_path / "o"), "--no-embeddings"])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert "line 1" in r.output
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no such file" in r.output


@pytest.mark.model
def test_examples_with_real_embeddings_umap_and_cache(examples_path: Path, tmp_path: Path) -> None:
    """The default path: MiniLM offline, UMAP (38 difference vectors), then a rerun served from the cache."""
    cache = tmp_path / "emb.sqlite"
    opts = AnalysisOptions(embedding_cache=str(cache), figures=False)
    first = analyze_file(examples_path, tmp_path / "a", opts).stats["semantic"]
    assert first["model"]["spec"] == "minilm" and first["model"]["stats"]["encoded"] > 0
    assert first["projection"]["method"] == "umap" and first["projection"]["points"] == 38
    assert {p["n"] for p in first["pairs"].values()} == {15, 12, 11}
    for t in first["tests"]:
        assert -1 <= t["unpaired"]["rank_biserial"] <= 1 and 0 <= t["unpaired"]["p_value"] <= 1

    from thoughttrace.llm.embeddings import Embedder, VectorCache

    fresh = Embedder("minilm", cache=VectorCache(cache))
    second = analyze_file(examples_path, tmp_path / "b", opts, embedder=fresh).stats["semantic"]
    assert fresh.stats["encoded"] == 0 and fresh._model is None
    assert second["pairs"] == first["pairs"]
