"""Turn-relation counting (End is structural) and the messages-per-conversation summary."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thoughttrace.analysis import RelationTurns
from thoughttrace.analysis.overview import compare_lengths, length_summary
from thoughttrace.data import Conversation, write_conversations
from thoughttrace.data.synthetic import generate_conversations


def _conv(cid: str, n_users: int) -> Conversation:
    msgs = []
    for i in range(n_users):
        msgs.append({"id": f"u{i}", "type": "user", "content": f"q{i}"})
        msgs.append({"id": f"a{i}", "type": "assistant", "content": f"a{i}"})
    return Conversation.model_validate({"id": cid, "messages": msgs})


def test_relation_shares_by_turn_with_structural_end() -> None:
    convs = [_conv("c1", 1), _conv("c2", 2), _conv("c3", 3), _conv("c4", 2)]
    rel = {("c2", "u1"): "Deepen", ("c3", "u1"): "New request", ("c3", "u2"): "Retry", ("c4", "u1"): "Deepen"}
    acc = RelationTurns(rel, max_turn=5)
    for c in convs:
        acc.add(c)
    res = acc.result()
    turn2 = next(r for r in res["by_turn"] if r["turn"] == 2)
    # 4 conversations reached turn 1; c1 ended -> End
    assert turn2["n"] == 4
    assert turn2["counts"] == {"Deepen": 2, "Variant": 0, "Retry": 0, "New request": 1, "End": 1}
    assert turn2["shares"]["Deepen"] == pytest.approx(0.5)
    turn3 = next(r for r in res["by_turn"] if r["turn"] == 3)
    assert turn3["counts"]["End"] == 2 and turn3["counts"]["Retry"] == 1
    turn4 = next(r for r in res["by_turn"] if r["turn"] == 4)
    assert turn4["counts"]["End"] == 1 and turn4["n"] == 1
    assert all(abs(sum(r["shares"].values()) - 1) < 1e-9 for r in res["by_turn"])


def test_unlabelled_turns_are_reported_not_guessed() -> None:
    acc = RelationTurns({("c1", "u1"): "Deepen"})
    acc.add(_conv("c1", 3))  # u2 has no label
    turn3 = next(r for r in acc.result()["by_turn"] if r["turn"] == 3)
    assert turn3["unlabelled"] == 1 and turn3["n"] == 0


def test_unlabelled_conversations_are_left_out() -> None:
    acc = RelationTurns({("c1", "u1"): "Deepen"})
    acc.add(_conv("c1", 2))
    acc.add(_conv("other", 4))  # no relation labels at all
    assert acc.result()["conversations"] == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=200))
def test_length_summary_matches_numpy(values: list[int]) -> None:
    s = length_summary(Counter(values))
    arr = np.array(values)
    assert s["n"] == len(values)
    assert s["median"] == pytest.approx(float(np.median(arr)))
    assert s["q1"] == pytest.approx(float(np.quantile(arr, 0.25)))
    assert s["q3"] == pytest.approx(float(np.quantile(arr, 0.75)))
    assert s["mean"] == pytest.approx(float(arr.mean()))
    assert sum(s["histogram"].values()) == len(values)


def test_compare_file(tmp_path) -> None:
    path = tmp_path / "short.jsonl"
    write_conversations(generate_conversations(40, seed=5, length_range=(2, 2)), path)
    s = compare_lengths(path)
    assert s["median"] == 2 and s["n"] == 40


def test_compare_file_not_in_schema_says_how_to_fix(tmp_path) -> None:
    from thoughttrace.data import DatasetError

    bad = tmp_path / "wildchat_raw.jsonl"
    bad.write_text('{"conversation": [{"role": "user", "content": "hi"}]}\n')
    with pytest.raises(DatasetError, match="data import"):
        compare_lengths(bad, skip_invalid=False)
