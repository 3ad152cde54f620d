"""Conversation stages: the ONE rule that bins a message's position, used by every analysis and eval.

The release splits a conversation at 0/33/67/100%. A thought's message gets the position k/(K-1) among
the K messages of its own role (user messages for reasons, assistant messages for reactions, so the first
reply's reactions sit at 0% just as the first prompt's reasons do) and the nearest of `n_stages` evenly
spaced points; a tie goes to the later stage. `position="conversation"` uses the position among all
messages instead. `analyze`, `eval simulator` and the synthetic generator all call this module.
"""

from __future__ import annotations

from typing import Literal

from .schema import Conversation

#: the release's four stages (0/33/67/100%)
N_STAGES = 4

Position = Literal["role", "conversation"]


def stage_bin(index: int, count: int, n_stages: int = N_STAGES) -> int:
    """The stage (0..n_stages-1) of the index-th of `count` items: nearest of 0/33/67/100% for 4 stages."""
    if n_stages < 2:
        raise ValueError("stages: need at least 2 (the release uses 4: 0/33/67/100%)")
    if not 0 <= index < max(count, 1):
        raise ValueError(f"stage_bin: index {index} outside 0..{count - 1}")
    if count <= 1:
        return 0
    # exact integer arithmetic: floor(index*(S-1)/(K-1) + 1/2), so ties go up (round() would go to even)
    return (2 * index * (n_stages - 1) + (count - 1)) // (2 * (count - 1))


def stage_names(n_stages: int = N_STAGES) -> list[str]:
    if n_stages < 2:
        raise ValueError("stages: need at least 2 (the release uses 4: 0/33/67/100%)")
    return [f"{round(100 * i / (n_stages - 1))}%" for i in range(n_stages)]


def message_stages(conv: Conversation, n_stages: int = N_STAGES, position: Position = "role") -> list[int]:
    """The stage of every message of `conv`, in message order."""
    if position not in ("role", "conversation"):
        raise ValueError("stage position must be 'role' or 'conversation'")
    msgs = conv.messages
    if position == "conversation":
        return [stage_bin(k, len(msgs), n_stages) for k in range(len(msgs))]
    out = [0] * len(msgs)
    for role in ("user", "assistant"):
        idx = [i for i, m in enumerate(msgs) if m.type == role]
        for k, i in enumerate(idx):
            out[i] = stage_bin(k, len(idx), n_stages)
    return out
