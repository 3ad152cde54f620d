"""The scale layer without Ray: routing shares, the sliding window, timeouts, `score` capability, shard plans.

Every server here is a real loopback HTTP server (thoughttrace.llm.fakeserver, in a thread or a process).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from thoughttrace.batch import plan_shards, read_shard
from thoughttrace.batch.engine import error_line
from thoughttrace.data import write_synthetic
from thoughttrace.label.batch_job import LabelShardJob
from thoughttrace.label.items import extract_items
from thoughttrace.label.labeler import Labeler
from thoughttrace.llm import CapabilityError, ConfigurationError, RetriesExhaustedError, get_model
from thoughttrace.llm.backends.scripted import ScriptedBackend
from thoughttrace.llm.fakeserver import FakeOpenAIServer
from thoughttrace.llm.model import Model
from thoughttrace.llm.pool import Endpoint, EndpointPool, parse_endpoints, split_limits
from thoughttrace.llm.window import ordered_window

from .conftest import child_env, server_stats


class _Servers:
    """Fake OpenAI servers on one background event loop (in this process, real sockets)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.fakes: list[FakeOpenAIServer] = []
        self._servers: list[asyncio.AbstractServer] = []

    def start(self, **options: Any) -> str:
        fake = FakeOpenAIServer(f"s{len(self.fakes)}", **options)

        async def go() -> str:
            server = await asyncio.start_server(fake.handle, "127.0.0.1", 0, backlog=1024)
            self._servers.append(server)
            return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"

        url = asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)
        self.fakes.append(fake)
        return url

    def close(self) -> None:
        for s in self._servers:  # the loop keeps running (a daemon thread): open handlers end with the process
            self.loop.call_soon_threadsafe(s.close)


@pytest.fixture
def fakes() -> Iterator[_Servers]:
    s = _Servers()
    yield s
    s.close()


def _send(model: Model, n: int, in_flight: int, tag: str = "") -> None:
    async def go() -> None:
        async for _ in ordered_window(lambda i: model.agenerate(f"{tag} q{i}", max_tokens=4), range(n), in_flight):
            pass
    model.run(go())


def _shares(model: Model, urls: list[str]) -> list[float]:
    by = model.usage.report().by_endpoint
    total = sum(by[u]["requests"] for u in urls)
    return [by[u]["requests"] / total for u in urls]


@pytest.mark.parametrize("in_flight", [1, 4, 64])
def test_two_equal_servers_get_half_of_the_requests_at_any_concurrency(fakes, in_flight):
    urls = [fakes.start(), fakes.start()]
    model = get_model("openai-compatible/fake", base_url=[{"url": u, "max_connections": 64} for u in urls],
                      cache=False)
    _send(model, 200, in_flight)
    shares = _shares(model, urls)
    assert all(abs(s - 0.5) <= 0.05 for s in shares), (in_flight, shares)  # n = 200 requests
    assert [f.completions for f in fakes.fakes] == [round(s * 200) for s in shares]  # what the servers saw


@pytest.mark.parametrize("in_flight", [1, 2, 3, 64])
def test_weights_hold_at_any_concurrency(fakes, in_flight):
    urls = [fakes.start(), fakes.start(), fakes.start()]
    fleet = [{"url": urls[0], "weight": 2, "max_connections": 64}, {"url": urls[1], "max_connections": 64},
             {"url": urls[2], "max_connections": 64}]
    model = get_model("openai-compatible/fake", base_url=fleet, cache=False)
    _send(model, 200, in_flight)
    shares = _shares(model, urls)
    assert all(abs(s - want) <= 0.05 for s, want in zip(shares, (0.5, 0.25, 0.25))), (in_flight, shares)


def test_every_process_starts_the_rotation_somewhere_else():
    # a Ray worker is a fresh process with the same pool: with a fixed start every worker's first request
    # (and, at one in flight, every other one) would go to the endpoint listed first
    firsts = {EndpointPool([Endpoint("http://a:1/v1"), Endpoint("http://b:1/v1")])._pick(set()).url  # type: ignore[union-attr]
              for _ in range(40)}
    assert firsts == {"http://a:1/v1", "http://b:1/v1"}


def test_a_slow_server_gets_fewer_requests_at_high_concurrency():
    pool = EndpointPool([Endpoint("http://fast:1/v1", max_connections=64), Endpoint("http://slow:1/v1",
                                                                                     max_connections=64)], seed=1)
    slow = pool.endpoints[1]
    slow.in_flight = 20  # stuck requests pile up on it
    picks = []
    for _ in range(10):
        ep = pool._pick(set())
        assert ep is not None
        ep.in_flight += 1
        picks.append(ep.url)
    assert picks.count("http://slow:1/v1") == 0


def test_label_batch_size_1_on_the_local_engine_splits_two_servers_evenly(tmp_path, fake_servers):
    (_, a), (_, b) = fake_servers(2)
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 40, seed=5)
    res = subprocess.run([sys.executable, "-m", "thoughttrace", "label", str(data), "--out", str(tmp_path / "l.jsonl"),
                          "--model", "openai-compatible/fake", "--base-url", f"{a},{b}", "--no-cache",
                          "--kind", "domain", "--batch-size", "1"], capture_output=True, text=True, env=child_env(),
                         timeout=300)
    assert res.returncode == 0, res.stderr
    served = [server_stats(a)["completions"], server_stats(b)["completions"]]
    assert sum(served) >= 40 and all(abs(s / sum(served) - 0.5) <= 0.05 for s in served), served
    assert server_stats(a)["max_in_flight"] == 1 and server_stats(b)["max_in_flight"] == 1


# -- the sliding window ----------------------------------------------------------------------------
def test_the_window_starts_a_new_call_as_soon_as_one_ends_and_keeps_the_order():
    started: list[int] = []
    finished: list[int] = []

    async def call(i: int) -> int:
        started.append(i)
        await asyncio.sleep(0.5 if i == 0 else 0.01)
        finished.append(i)
        return i * 10

    async def go() -> list[int]:
        return [r async for r in ordered_window(call, range(20), 4)]

    assert asyncio.run(go()) == [i * 10 for i in range(20)]
    # batches of 4 would start item 4 only after the slow item 0: here all 19 fast ones ran meanwhile
    assert finished[-1] == 0 and started.index(19) < len(started) and finished.index(19) < finished.index(0)


class _SlowFirst(ScriptedBackend):
    """A scripted labeller whose first call is slow; records when each call ends."""

    def __init__(self) -> None:
        super().__init__(outputs=['{"label": "coding"}'], name="slow-first")
        self.ends: list[bool] = []  # per finished call: was it the slow one
        self.calls = self.in_flight = self.peak = 0

    async def generate(self, messages: Any, config: Any) -> Any:
        slow = self.calls == 0
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.6 if slow else 0.01)
        self.ends.append(slow)
        self.in_flight -= 1
        return await super().generate(messages, config)


def _ran_while_the_slow_one_ran(backend: _SlowFirst) -> int:
    return backend.ends.index(True)


def _convs(tmp_path, n: int) -> list[Any]:
    data = tmp_path / "c.jsonl"
    write_synthetic(data, n, seed=2)
    return list(read_shard(plan_shards(data, 1000).as_dict(), 0))


def test_label_file_keeps_its_window_full_while_one_call_is_slow(tmp_path):
    backend = _SlowFirst()
    model = Model(backend, cache=None)
    items = list(extract_items(_convs(tmp_path, 24), ("domain",)))
    Labeler(model, method="generate").label_file(items, tmp_path / "out.jsonl", batch_size=4)
    # gathered batches of 4 would finish only the 3 others of the first batch during the slow call
    assert _ran_while_the_slow_one_ran(backend) >= len(items) - 4 and backend.peak == 4
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in lines] == [it.item_id for it in items]  # input order kept


def test_the_shard_job_keeps_its_window_full_while_one_call_is_slow(tmp_path):
    backend = _SlowFirst()
    model = Model(backend, cache=None)
    records, summary = LabelShardJob(kinds=("domain",), batch_size=4).run_shard(_convs(tmp_path, 24), model)
    assert _ran_while_the_slow_one_ran(backend) >= summary["items"] - 4 and backend.peak == 4
    assert len(records) == summary["items"]


# -- timeouts --------------------------------------------------------------------------------------
def test_a_hung_server_is_taken_out_after_the_timeout_and_the_job_stays_within_twice_the_healthy_time(fakes):
    healthy = [fakes.start(latency_ms=30, seed=i) for i in range(2)]
    hung = fakes.start(hang=True)

    def wall(urls: list[str], tag: str) -> tuple[float, Model]:
        model = get_model("openai-compatible/fake", base_url=[{"url": u, "max_connections": 8} for u in urls],
                          cache=False, timeout=0.5)
        t0 = time.perf_counter()
        _send(model, 120, 8, tag)
        return time.perf_counter() - t0, model

    base, _ = wall(healthy, "healthy")
    with_hung, model = wall([*healthy, hung], "hung")
    stats = model.usage.report().by_endpoint
    assert stats[hung]["taken_out"] >= 1 and stats[hung]["completion_tokens"] == 0
    assert model.usage.report().calls == 120  # every request answered, the hung server's moved on
    assert with_hung <= 2 * base + 0.5, (base, with_hung)  # 0.5: the one timeout itself on a ~1 s job


def test_the_fleet_yaml_timeout_is_the_endpoint_own(fakes, tmp_path):
    hung, good = fakes.start(hang=True), fakes.start()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"endpoints:\n  - url: {hung}\n    timeout: 0.3\n    weight: 100\n  - url: {good}\n")
    model = get_model("openai-compatible/fake", base_url=str(fleet), cache=False)  # --timeout: 120 s default
    t0 = time.perf_counter()
    model.generate("q", max_tokens=4)
    assert time.perf_counter() - t0 < 5 and model.usage.report().by_endpoint[hung]["taken_out"] == 1
    fleet.write_text(f"endpoints:\n  - url: {good}\n    timeout: -1\n")
    with pytest.raises(ConfigurationError, match="timeout must be a number of seconds > 0"):
        parse_endpoints(str(fleet))


def test_cli_timeout_fails_a_hung_server_fast_in_one_line(fakes):
    from click.testing import CliRunner

    from thoughttrace.cli.main import cli

    hung = fakes.start(hang=True)
    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, ["llm", "ping", "--model", "openai-compatible/fake", "--base-url", hung,
                                   "--no-cache", "--timeout", "0.3"])
    assert res.exit_code == 1 and time.perf_counter() - t0 < 20
    assert "no answer within the timeout" in res.output and "Traceback" not in res.output


# -- per-server limits shared by workers ------------------------------------------------------------
def test_split_limits_gives_each_worker_its_share_and_refuses_fewer_slots_than_workers(tmp_path, monkeypatch):
    (tmp_path / "fleet.yaml").write_text("endpoints:\n  - url: http://a:1/v1\n    max_connections: 8\n"
                                         "  - url: http://b:1/v1\n    max_connections: 5\n    timeout: 7\n")
    monkeypatch.chdir(tmp_path)
    shared = split_limits("fleet.yaml", 2)  # relative: resolved here, the driver
    assert [e["max_connections"] for e in shared] == [4, 2] and shared[1]["timeout"] == 7
    assert sum(e["max_connections"] for e in split_limits("fleet.yaml", 5)) * 5 <= 8 + 5
    with pytest.raises(ConfigurationError, match="use --workers 5 or fewer"):
        split_limits("fleet.yaml", 6)


# -- score -----------------------------------------------------------------------------------------
def test_score_through_echo_is_the_sum_of_the_continuation_tokens(fakes):
    model = get_model("openai-compatible/fake", base_url=fakes.start(completions="echo"), cache=False)
    got = model.score("Hello ", ["world"]).logprobs
    assert got == pytest.approx([-0.5])  # 5 one-character tokens at -0.1 each


@pytest.mark.parametrize("mode, why", [("none", "no prompt log-probs on /v1/completions"),
                                       ("ignore-echo", "ignored `echo`")])
def test_score_without_prompt_logprobs_is_a_capability_error_naming_the_fallback(fakes, mode, why):
    model = get_model("openai-compatible/fake", base_url=fakes.start(completions=mode), cache=False)
    with pytest.raises(CapabilityError) as info:
        model.score("Hello ", ["world"])  # never a 0.0
    text = str(info.value)
    assert why in text and "score_method='grammar'" in text and "/tokenize" in text  # the fallback was tried
    strict = get_model("openai-compatible/fake", base_url=fakes.start(completions=mode), cache=False,
                       score_method="echo")
    with pytest.raises(CapabilityError, match="does not allow it"):
        strict.score("Hello ", ["world"])


# -- shard plans and error lines -------------------------------------------------------------------
def test_no_shard_is_empty_even_when_lines_grow_past_the_sample(tmp_path):
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 30, seed=1)
    lines = data.read_text().splitlines()
    # short lines in the 1 MB sample, then lines ten times longer: a fixed byte step cuts empty shards
    small = tmp_path / "small.jsonl"
    write_synthetic(small, 3000, seed=1)
    long = [json.dumps({**json.loads(x), "meta": {"pad": "x" * 20000}}) for x in lines]
    data.write_text(small.read_text() + "\n".join(long) + "\n\n\n")
    plan = plan_shards(data, 20).as_dict()
    sizes = [sum(1 for _ in read_shard(plan, k)) for k in range(plan["n_shards"])]
    assert all(n > 0 for n in sizes), sizes
    assert sum(sizes) == 3000 + 30
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    assert plan_shards(empty, 20).n_shards == 0


def test_a_plan_cuts_equal_shards_without_a_small_tail(tmp_path):
    # 2,000 rows at 1,000 were cut 997 + 991 + 12 (a fixed byte step from the sample's mean line): the 12-row
    # tail cost a worker's start-up, and queued behind a busy worker, a whole shard's time
    data = tmp_path / "c.jsonl"
    write_synthetic(data, 600, seed=7)
    for rows, n in ((300, 2), (200, 3), (250, 2), (600, 1), (100, 6)):
        plan = plan_shards(data, rows).as_dict()
        sizes = [sum(1 for _ in read_shard(plan, k)) for k in range(plan["n_shards"])]
        assert len(sizes) == n and sum(sizes) == 600, (rows, sizes)
        assert min(sizes) >= 0.7 * 600 / n, (rows, sizes)


def test_the_worker_error_line_is_the_cli_line():
    exc = RetriesExhaustedError(4, ConnectionError("http://x:1/v1/chat/completions: ConnectError; is the server up?"))
    assert error_line(exc) == f"RetriesExhaustedError: {exc}"
    assert "http://x:1/v1" in error_line(exc) and "is the server up?" in error_line(exc)
