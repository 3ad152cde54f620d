"""The one stage-binning rule, checked against an independent rule written differently (exact fractions)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from thoughttrace.data import Conversation
from thoughttrace.data.stages import message_stages, stage_bin, stage_names


def nearest_anchor(index: int, count: int, n_stages: int) -> int:
    """Independent rule: the anchor j/(S-1) closest to the position index/(K-1); on a tie the later one."""
    if count == 1:
        return 0
    pos = Fraction(index, count - 1)
    anchors = [Fraction(j, n_stages - 1) for j in range(n_stages)]
    best = 0
    for j, a in enumerate(anchors):
        if abs(pos - a) <= abs(pos - anchors[best]):
            best = j
    return best


@pytest.mark.parametrize("n_stages", [2, 3, 4, 5, 7])
def test_stage_bin_equals_the_nearest_anchor_rule(n_stages: int) -> None:
    for count in range(1, 60):
        assert [stage_bin(i, count, n_stages) for i in range(count)] == [
            nearest_anchor(i, count, n_stages) for i in range(count)], count


def test_known_cells_and_bad_input() -> None:
    assert [stage_bin(i, 7) for i in range(7)] == [0, 1, 1, 2, 2, 3, 3]
    assert [stage_bin(i, 10) for i in range(10)] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert stage_names(4) == ["0%", "33%", "67%", "100%"]
    with pytest.raises(ValueError):
        stage_bin(5, 3)
    with pytest.raises(ValueError):
        stage_names(1)


def test_message_stages_bin_each_role_separately() -> None:
    msgs = [{"id": f"m{i}", "type": "user" if i % 2 == 0 else "assistant", "content": str(i)} for i in range(14)]
    conv = Conversation.model_validate({"id": "c", "messages": msgs})
    role = message_stages(conv)
    assert role[0::2] == [nearest_anchor(k, 7, 4) for k in range(7)]
    assert role[1::2] == [nearest_anchor(k, 7, 4) for k in range(7)]
    assert message_stages(conv, position="conversation") == [nearest_anchor(k, 14, 4) for k in range(14)]
