"""Endpoint-pool rules that scripts/mutate.py found unprotected (llm/pool.py): the endpoint list's checks, each
worker's share of a server's limit, the request counters, the slack rule, and a released slot waking a waiter.

Why: a fleet YAML is an operator's promise to the servers (max_connections is the SERVER's limit, shared by the
workers), and a bad entry must be one clear line; a caller waiting for a full pool must get the slot as soon
as one is released, not at the next probe tick.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from thoughttrace.llm.errors import ConfigurationError
from thoughttrace.llm.pool import Endpoint, EndpointPool, parse_endpoints, split_limits

A, B = "http://127.0.0.1:9001/v1", "http://127.0.0.1:9002/v1"


@pytest.mark.parametrize(("entry", "says"), [
    ({"url": A, "max_connections": "many"}, "max_connections must be an integer, weight and timeout numbers"),
    ({"url": A, "timeout": 0}, "timeout must be a number of seconds > 0"),
    ({"url": A, "timeout": -3}, "timeout must be a number of seconds > 0"),
    ({"url": A, "timeout": float("inf")}, "timeout must be a number of seconds > 0"),
])
def test_a_bad_endpoint_entry_is_one_clear_error(entry: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        parse_endpoints([entry])


def test_api_key_env_reads_the_key_from_the_variable_and_refuses_an_unset_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_TEST_POOL_KEY", "sk-from-env")
    [ep] = parse_endpoints([{"url": A, "api_key_env": "TT_TEST_POOL_KEY", "timeout": 2.5}])
    assert (ep.api_key, ep.api_key_env, ep.timeout) == ("sk-from-env", "TT_TEST_POOL_KEY", 2.5)
    monkeypatch.delenv("TT_TEST_POOL_KEY")
    with pytest.raises(ConfigurationError, match="TT_TEST_POOL_KEY named by api_key_env is not set"):
        parse_endpoints([{"url": A, "api_key_env": "TT_TEST_POOL_KEY"}])


def test_each_worker_gets_its_share_of_a_servers_limit(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(f"endpoints:\n  - url: {A}\n    max_connections: 8\n"
                                         f"  - url: {B}\n    max_connections: 5\n    weight: 2\n")
    assert split_limits("fleet.yaml", 1, base_dir=tmp_path) == [
        {"url": A, "max_connections": 8, "weight": 1.0}, {"url": B, "max_connections": 5, "weight": 2.0}]
    assert [e["max_connections"] for e in split_limits("fleet.yaml", 2, base_dir=tmp_path)] == [4, 2]
    assert [e["max_connections"] for e in split_limits("fleet.yaml", 5, base_dir=tmp_path)] == [1, 1]
    with pytest.raises(ConfigurationError, match=f"{B} allows max_connections=5 .* fewer than the 6 workers"):
        split_limits("fleet.yaml", 6, base_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="at least 1"):
        split_limits("fleet.yaml", 0, base_dir=tmp_path)


def test_a_fresh_endpoint_has_counted_nothing_and_each_acquire_counts_one_request() -> None:
    ep = Endpoint(url=A, max_connections=2)
    assert set(ep.stats.values()) == {0}
    pool = EndpointPool([ep], seed=0)

    async def run() -> None:
        for _ in range(3):
            got = await pool.acquire(set(), lambda e: asyncio.sleep(0, True))
            await pool.release(got)

    asyncio.run(run())
    assert pool.stats()[A]["requests"] == 3 and ep.in_flight == 0


@pytest.mark.parametrize("seed", range(8))
def test_an_endpoint_slack_requests_above_its_share_is_passed_over(seed: int) -> None:
    # equal weights, 3 in flight on A and none on B: A's excess over its share of 4 is exactly SLACK (1.0)
    a, b = Endpoint(url=A, max_connections=8), Endpoint(url=B, max_connections=8)
    a.in_flight = 3
    pool = EndpointPool([a, b], seed=seed)

    async def pick() -> str:
        return (await pool.acquire(set(), lambda e: asyncio.sleep(0, True))).url

    assert asyncio.run(pick()) == B


def test_a_released_slot_wakes_a_waiting_caller_at_once() -> None:
    pool = EndpointPool([Endpoint(url=A, max_connections=1)], probe_interval=30.0, seed=0)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        first = await pool.acquire(set(), lambda e: asyncio.sleep(0, True))
        waiter = asyncio.create_task(pool.acquire(set(), lambda e: asyncio.sleep(0, True)))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # the pool is full: the second caller waits
        started = loop.time()
        await pool.release(first)
        await asyncio.wait_for(waiter, timeout=5.0)  # not the 30 s probe interval
        return loop.time() - started

    assert asyncio.run(run()) < 5.0
