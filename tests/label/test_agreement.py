"""Agreement metrics against scikit-learn, and `label-eval` / `label` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.cli.main import cli
from thoughttrace.data import read_conversations
from thoughttrace.label import agreement, evaluate_labels, extract_items, make_item_id

LABELS = ["a", "b", "c", "d"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), min_size=2, max_size=60))
def test_metrics_match_sklearn(pairs: list[tuple[str, str]]) -> None:
    import sklearn.metrics as sk
    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    m = agreement(gold, pred, LABELS)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(gold, pred))
    present = sorted(set(gold) | set(pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(gold, pred, labels=present, average="macro", zero_division=0))
    if len(set(gold) | set(pred)) > 1:
        assert m["cohen_kappa"] == pytest.approx(sk.cohen_kappa_score(gold, pred), abs=1e-9)
    assert np.array_equal(np.array(m["confusion_matrix"]), sk.confusion_matrix(gold, pred, labels=LABELS))
    for lab in present:
        assert m["per_type"][lab]["recall"] == pytest.approx(
            sk.recall_score(gold, pred, labels=[lab], average="macro", zero_division=0))


def test_unlabelled_predictions_lower_coverage_not_accuracy() -> None:
    m = agreement(["a", "b", "a", "b"], ["a", "b", None, None], ["a", "b"])
    assert m["coverage"] == 0.5 and m["accuracy"] == 1.0 and m["accuracy_all"] == 0.5


def _predictions(examples_path: Path, out: Path, wrong_every: int = 0) -> None:
    items = list(extract_items(read_conversations(examples_path), ["reason", "reaction"]))
    recs = []
    for k, it in enumerate(items):
        label = it.gold
        if wrong_every and k % wrong_every == 0:
            label = "Style Expectation" if it.kind == "reason" else "Scope Fit"
        recs.append({"format_version": 1, "item_id": it.item_id, "kind": it.kind, "conversation_id": it.conversation_id,
                     "message_id": it.message_id, "index": it.index, "label": label, "status": "ok",
                     "model": "test", "method": "generate"})
    out.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_evaluate_against_dataset_labels(examples_path: Path, tmp_path: Path) -> None:
    perfect = tmp_path / "perfect.jsonl"
    _predictions(examples_path, perfect)
    res = evaluate_labels(examples_path, perfect)
    assert set(res["kinds"]) == {"reason", "reaction"}
    assert res["kinds"]["reason"]["accuracy"] == 1.0 and res["kinds"]["reason"]["cohen_kappa"] == 1.0
    noisy = tmp_path / "noisy.jsonl"
    _predictions(examples_path, noisy, wrong_every=3)
    res2 = evaluate_labels(examples_path, noisy, ["reason"])
    assert 0.4 < res2["kinds"]["reason"]["accuracy"] < 1.0
    # a labels file can be the reference too (e.g. a second annotator)
    res3 = evaluate_labels(perfect, noisy, ["reason"])
    assert res3["kinds"]["reason"]["accuracy"] == res2["kinds"]["reason"]["accuracy"]


def test_evaluate_with_nothing_in_common_says_why(examples_path: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"item_id": make_item_id("reason", "zz", "m", 0), "kind": "reason",
                                 "conversation_id": "zz", "label": "Task Continuation", "status": "ok"}) + "\n")
    with pytest.raises(ValueError, match="same dataset"):
        evaluate_labels(examples_path, other)


def test_cli_label_then_label_eval(examples_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    runner = CliRunner()
    # the bare scripted model answers "" to everything: all items must come out unlabelled, none guessed
    r = runner.invoke(cli, ["label", str(examples_path), "--out", str(out), "--model", "scripted", "--no-cache",
                            "--kind", "reason", "--max-attempts", "2", "--json"])
    assert r.exit_code == 0, r.output
    meta = json.loads(Path(str(out) + ".meta.json").read_text())
    assert meta["format_version"] == 1 and meta["summary"]["unlabelled"] == 15
    assert meta["usage"]["models"]["scripted"]["calls"] == 30
    r = runner.invoke(cli, ["label-eval", str(examples_path), str(out), "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    assert "coverage 0.0%" in r.output
    assert json.loads((tmp_path / "m.json").read_text())["kinds"]["reason"]["coverage"] == 0.0


def test_cli_label_errors_are_one_line(examples_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(cli, ["label", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl"),
                            "--model", "scripted"])
    assert r.exit_code == 1 and "no such file" in r.output and "Traceback" not in r.output
    notlabels = tmp_path / "o.jsonl"
    notlabels.write_text('{"something": 1}\n')
    r = runner.invoke(cli, ["label", str(examples_path), "--out", str(notlabels), "--model", "scripted"])
    assert r.exit_code == 1 and "not a label record" in r.output
