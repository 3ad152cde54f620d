from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thoughttrace.evals import ItemStore, Judge, Rejudge, ThoughtInferenceEval
from thoughttrace.evals import judge_agreement as ag
from thoughttrace.llm import get_model


async def test_second_judge_agreement_on_an_items_file(scripted: Any, synth: Any, tmp_path: Path) -> None:
    model = scripted()
    store = ItemStore(tmp_path / "items.jsonl")
    await ThoughtInferenceEval(model, Judge(model)).arun(synth, store, with_next_message=True)

    def second(messages: Any, cfg: Any) -> str:
        return "ok\nScore: 4"

    j2 = get_model("scripted:second", cache=False, fn=second)
    records = ag.read_records(tmp_path / "items.jsonl")
    out = ItemStore(tmp_path / "agree" / "items.jsonl")
    stats = await Rejudge(lambda rubric: Judge(j2, rubric)).arun(records, out)
    assert stats.computed == len(records)
    summary = ag.write_outputs(tmp_path / "agree", out, {}, {})
    row = summary["agreement"][0]
    assert row["rubric"] == "thought_similarity" and row["judge_b"] == "scripted:second"
    assert row["mean_abs_diff"] == pytest.approx(1.0) and row["pearson"] is None  # both judges constant


async def test_inline_second_judge_reports_agreement(scripted: Any, synth: Any, tmp_path: Path) -> None:
    from thoughttrace.evals import thought_inference as ti

    model = scripted()
    j2 = get_model("scripted:second", cache=False, fn=lambda m, c: f"ok\nScore: {2 + len(m[-1].content) % 3}")
    store = ItemStore(tmp_path / "items.jsonl")
    await ThoughtInferenceEval(model, Judge(model), judge2=Judge(j2)).arun(synth, store)
    summary, md = ti.summarise(store.records(), {}, {})
    assert summary["judge_agreement"]["n"] == len(store.records()) and "Judge agreement" in md


def test_read_records_explains_a_wrong_file(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text('{"key": "a", "prediction": "p"}\n')
    with pytest.raises(ValueError, match="no judged items"):
        ag.read_records(p)
    with pytest.raises(FileNotFoundError):
        ag.read_records(tmp_path / "missing.jsonl")
