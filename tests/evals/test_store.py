from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thoughttrace.evals import ItemStore, run_items
from thoughttrace.llm import BadRequestError, ConnectionFailedError


@given(st.lists(st.text(max_size=30), min_size=1, max_size=8), st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_cut_anywhere_keeps_exactly_the_complete_records(tmp_path: Path, values: list[str], data: Any) -> None:
    path = tmp_path / f"items-{abs(hash(tuple(values)))}.jsonl"
    text = "".join(json.dumps({"key": f"k{i}", "value": v}, ensure_ascii=False) + "\n" for i, v in enumerate(values))
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    path.write_text(text[:cut], encoding="utf-8")
    complete = text[:cut].count("\n")
    store = ItemStore(path)
    assert len(store) in (complete, complete + 1)  # a cut just before a newline leaves a whole record
    assert [r["value"] for r in store.records()] == values[: len(store)]
    # appends start on a fresh line after the repair
    asyncio.run(store.append({"key": "new", "value": "x"}))
    assert [json.loads(x)["key"] for x in path.read_text(encoding="utf-8").split("\n") if x][-1] == "new"
    path.unlink()


async def test_concurrency_is_bounded_and_used(tmp_path: Path) -> None:
    state = {"now": 0, "max": 0}

    async def work(item: int) -> dict[str, Any]:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return {"value": item}

    for conc in (1, 3):
        state["max"] = 0
        store = ItemStore(tmp_path / f"items-{conc}.jsonl")
        await run_items(list(range(9)), str, work, store, concurrency=conc)
        assert state["max"] == conc and len(store) == 9


async def test_rejected_items_fail_alone_other_errors_stop_the_run(tmp_path: Path) -> None:
    async def work(item: int) -> dict[str, Any]:
        if item == 2:
            raise BadRequestError("prompt too long")
        return {"value": item}

    store = ItemStore(tmp_path / "a.jsonl")
    with pytest.warns(UserWarning, match="prompt too long"):
        stats = await run_items([1, 2, 3], str, work, store)
    assert stats.failed == 1 and stats.computed == 2 and "2" not in store

    async def down(item: int) -> dict[str, Any]:
        raise ConnectionFailedError("server down")

    with pytest.raises(ConnectionFailedError):
        await run_items([1, 2], str, down, ItemStore(tmp_path / "b.jsonl"))
    with pytest.raises(ValueError, match="concurrency"):
        await run_items([1], str, down, ItemStore(tmp_path / "c.jsonl"), concurrency=0)
