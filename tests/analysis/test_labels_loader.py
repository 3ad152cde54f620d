"""Loading label records for `analyze --labels`: only `ok` records count, later ones override earlier ones."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.analysis import load_label_records
from thoughttrace.data import DatasetError

record = st.fixed_dictionaries({
    "kind": st.sampled_from(["reason", "reaction", "domain", "relation"]),
    "conversation_id": st.sampled_from(["c1", "c2"]),
    "message_id": st.one_of(st.none(), st.sampled_from(["m1", "m2"])),
    "index": st.one_of(st.none(), st.integers(0, 2)),
    "label": st.one_of(st.none(), st.text(min_size=1, max_size=12)),
    "status": st.sampled_from(["ok", "unlabelled"]),
})


@settings(max_examples=80, deadline=None)
@given(st.lists(record, max_size=30))
def test_overlay_keeps_exactly_the_ok_labels(records: list[dict]) -> None:
    expected: dict = {}
    for r in records:
        if r["status"] == "ok" and r["label"]:
            expected[(r["kind"], r["conversation_id"], r["message_id"], r["index"])] = r["label"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.jsonl"
        path.write_text(json.dumps({"format_version": 1}) + "\n" + "".join(json.dumps(r) + "\n" for r in records))
        overlay = load_label_records([path])
    assert overlay.labels == expected


def test_bad_label_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="thoughttrace label"):
        load_label_records([tmp_path / "missing.jsonl"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "mood", "conversation_id": "c", "label": "x"}\n')
    with pytest.raises(DatasetError, match="line 1"):
        load_label_records([bad])
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{nope\n")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_label_records([broken])
