"""The sliding window's look-ahead: far enough that a straggler does not stall it, bounded for memory."""

from __future__ import annotations

import asyncio

from thoughttrace.llm import window
from thoughttrace.llm.window import ordered_window


def test_a_straggler_does_not_stall_the_window_and_the_look_ahead_is_bounded():
    started: list[int] = []
    slow_done = False

    async def call(i: int) -> int:
        nonlocal slow_done
        started.append(i)
        if i == 0:
            await asyncio.sleep(0.3)  # the straggler (a lognormal tail: 30x the median)
            slow_done = True
        else:
            await asyncio.sleep(0)
        return i

    async def main() -> tuple[list[int], int]:
        out = []
        during = 0
        async for r in ordered_window(call, range(1000), 2):
            if r == 0:
                during = len(started)  # calls started while the straggler was out
            out.append(r)
        return out, during

    out, during = asyncio.run(main())
    assert out == list(range(1000))  # still in input order
    # the others kept going up to size * AHEAD started calls (16 windows ahead stalled at 32), never more
    assert during == 2 * window.AHEAD == 128
