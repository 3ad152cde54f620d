"""Endpoint pools against real loopback HTTP servers: routing, failover, probing back in, cache keys, usage."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from thoughttrace.cli.main import cli
from thoughttrace.llm import ConfigurationError, ConnectionFailedError, RetriesExhaustedError, get_model
from thoughttrace.llm.pool import parse_endpoints


class _Handler(BaseHTTPRequestHandler):
    """An OpenAI-style server: answers with its own name, counts hits and the most requests in flight at once."""

    def do_GET(self) -> None:  # noqa: N802
        self._send(200 if self.server.status < 500 else self.server.status, {"data": []})  # type: ignore[attr-defined]

    def do_POST(self) -> None:  # noqa: N802
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with srv.lock:  # type: ignore[attr-defined]
            srv.hits += 1  # type: ignore[attr-defined]
            srv.in_flight += 1  # type: ignore[attr-defined]
            srv.peak = max(srv.peak, srv.in_flight)  # type: ignore[attr-defined]
        time.sleep(srv.delay)  # type: ignore[attr-defined]
        with srv.lock:  # type: ignore[attr-defined]
            srv.in_flight -= 1  # type: ignore[attr-defined]
        if srv.status != 200:  # type: ignore[attr-defined]
            self._send(srv.status, {"error": {"message": "overloaded"}})  # type: ignore[attr-defined]
            return
        if body.get("stream"):
            chunks = [{"choices": [{"delta": {"content": f"from {srv.name}"}, "finish_reason": "stop"}]},  # type: ignore[attr-defined]
                      {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}]
            data = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._send(200, {
            "choices": [{"message": {"role": "assistant", "content": f"from {srv.name}"},  # type: ignore[attr-defined]
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2},
        })

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _start(name: str, port: int = 0, delay: float = 0.0, status: int = 200) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    srv.name, srv.delay, srv.status = name, delay, status  # type: ignore[attr-defined]
    srv.hits = srv.in_flight = srv.peak = 0  # type: ignore[attr-defined]
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _url(srv: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def servers() -> Iterator[list[ThreadingHTTPServer]]:
    started: list[ThreadingHTTPServer] = []
    yield started
    for s in started:
        s.shutdown()
        s.server_close()


def _first(url: str, *others: str) -> list[object]:
    """A pool whose rotation starts at `url` whatever its random start (weight 100 against 1)."""
    return [{"url": url, "weight": 100}, *others]


def _burst(model, n: int) -> list[str]:
    async def go() -> list[str]:
        gens = await asyncio.gather(*[model.agenerate(f"q{i}", max_tokens=4) for i in range(n)])
        return [g.text for g in gens]
    return model.run(go())


def test_fewest_in_flight_is_weighted(servers, tmp_path):
    a, b = _start("a", delay=0.3), _start("b", delay=0.3)
    servers += [a, b]
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"format_version: 1\nendpoints:\n  - url: {_url(a)}\n    weight: 3\n    max_connections: 10\n"
                     f"  - url: {_url(b)}\n    max_connections: 10\n")
    model = get_model("openai-compatible/m", base_url=str(fleet), cache=False)
    texts = _burst(model, 8)
    # 8 at once, (in_flight + 1) / weight: 6 to a (weight 3), 2 to b (weight 1); unweighted it would be 4 / 4
    assert texts.count("from a") == 6 and texts.count("from b") == 2
    usage = model.usage.report()
    assert usage.by_endpoint[_url(a)]["requests"] == 6 and usage.by_endpoint[_url(b)]["requests"] == 2
    assert sum(e["prompt_tokens"] for e in usage.by_endpoint.values()) == usage.prompt_tokens == 40


def test_per_endpoint_max_connections_is_kept(servers, tmp_path):
    a, b = _start("a", delay=0.3), _start("b", delay=0.3)
    servers += [a, b]
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"endpoints:\n  - url: {_url(a)}\n    max_connections: 6\n  - url: {_url(b)}\n"
                     "    max_connections: 2\n")
    model = get_model("openai-compatible/m", base_url=str(fleet), cache=False)
    texts = _burst(model, 8)
    # equal weights alternate a, b until b holds its 2; the other 6 go to a (without the limit: 4 / 4)
    assert texts.count("from a") == 6 and texts.count("from b") == 2
    _burst(model, 12)  # above the pool's capacity of 8: the rest wait for a free slot
    assert b.peak <= 2 and a.peak <= 6  # type: ignore[attr-defined]
    assert model.usage.report().calls == 20


def test_unreachable_endpoint_is_taken_out_and_the_request_moves_on(servers):
    b = _start("b")
    servers.append(b)
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    model = get_model("openai-compatible/m", base_url=_first(dead, _url(b)), cache=False, max_retries=0,
                      probe_interval=60.0)
    texts = [model.generate(f"q{i}", max_tokens=4).text for i in range(5)]
    assert texts == ["from b"] * 5
    usage = model.usage.report()
    # the first request tried the dead server (weight 100: first in the rotation), failed over at once; then it was out of rotation
    assert usage.by_endpoint[dead] == {"requests": 1, "errors": 1, "failovers": 1, "taken_out": 1,
                                       "prompt_tokens": 0, "completion_tokens": 0}
    assert usage.by_endpoint[_url(b)]["requests"] == 5
    assert usage.retries == 0 and usage.errors == 0 and usage.calls == 5


def test_taken_out_endpoint_is_probed_back_in(servers):
    b = _start("b")
    servers.append(b)
    port = _free_port()
    model = get_model("openai-compatible/m", base_url=f"http://127.0.0.1:{port}/v1,{_url(b)}", cache=False,
                      probe_interval=0.2)
    assert model.generate("q0", max_tokens=4).text == "from b"
    a = _start("a", port=port)  # the server comes (back) up on its address
    servers.append(a)
    time.sleep(0.3)
    texts = [model.generate(f"q{i}", max_tokens=4).text for i in range(1, 4)]
    assert "from a" in texts, texts
    assert model.backend.endpoint_stats()[f"http://127.0.0.1:{port}/v1"]["up"] is True


def test_server_error_is_retried_on_another_endpoint_without_taking_it_out(servers):
    bad, good = _start("bad", status=503), _start("good")
    servers += [bad, good]
    model = get_model("openai-compatible/m", base_url=_first(_url(bad), _url(good)), cache=False, max_retries=0)
    assert model.generate("q", max_tokens=4).text == "from good"
    stats = model.backend.endpoint_stats()
    assert stats[_url(bad)]["up"] is True  # a 5xx answer means the server is there: not taken out
    assert model.usage.report().by_endpoint[_url(bad)]["errors"] == 1


def test_every_endpoint_down_is_a_typed_error(servers):
    urls = [f"http://127.0.0.1:{_free_port()}/v1" for _ in range(2)]
    model = get_model("openai-compatible/m", base_url=",".join(urls), cache=False, max_retries=1,
                      backoff_seconds=0.01, probe_interval=0.05)
    with pytest.raises(RetriesExhaustedError) as info:
        model.generate("q", max_tokens=4)
    assert isinstance(info.value.last, ConnectionFailedError)


def test_cache_key_does_not_depend_on_which_server_answered(servers, tmp_path):
    a, b = _start("a"), _start("b")
    servers += [a, b]
    cache = tmp_path / "c.sqlite"
    pooled = get_model("openai-compatible/m", base_url=f"{_url(a)},{_url(b)}", cache=cache)
    first = pooled.generate("hello", max_tokens=4)
    answered, idle = (a, b) if first.text == "from a" else (b, a)
    assert first.text == f"from {answered.name}" and answered.hits == 1  # type: ignore[attr-defined]
    # the same request through the other server alone, through the pool in the other order: from the cache
    for base in (_url(idle), f"{_url(idle)},{_url(answered)}"):
        other = get_model("openai-compatible/m", base_url=base, cache=cache)
        again = other.generate("hello", max_tokens=4)
        assert again.cached and again.text == first.text
        assert other.usage.report().calls == 0
    assert idle.hits == 0  # type: ignore[attr-defined]
    payload = {"messages": [{"role": "user", "content": "x"}], "config": {}}
    assert pooled._key("generate", payload) == get_model("openai-compatible/m", base_url=_url(b),
                                                         cache=False)._key("generate", payload)


def test_stream_fails_over_before_the_first_chunk(servers):
    b = _start("b")
    servers.append(b)
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    # weight 100: the rotation tries the dead server first whatever its random start
    model = get_model("openai-compatible/m", base_url=[{"url": dead, "weight": 100}, _url(b)], cache=False,
                      max_retries=0)

    async def go() -> str:
        return "".join([p async for p in model.astream("q", max_tokens=4)])

    assert model.run(go()) == "from b"
    usage = model.usage.report()
    assert usage.by_endpoint[dead]["failovers"] == 1
    assert usage.by_endpoint[_url(b)]["prompt_tokens"] == 5 and usage.calls == 1


@pytest.mark.parametrize("spec, message", [
    ("notaurl", r"not an http\(s\) URL"),
    ("http://a:1/v1,http://a:1/v1", "listed twice"),
    (" , ", "no endpoint URL"),
])
def test_bad_endpoint_lists_say_what_to_fix(spec, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_endpoints(spec)


def test_bad_endpoints_yaml_says_what_to_fix(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("endpoints:\n  - url: http://x:1/v1\n    weight: 0\n")
    with pytest.raises(ConfigurationError, match="weight > 0"):
        parse_endpoints(str(p))
    p.write_text("endpoints:\n  - url: http://x:1/v1\n    speed: 3\n")
    with pytest.raises(ConfigurationError, match="unknown field"):
        parse_endpoints(str(p))
    with pytest.raises(ConfigurationError, match="no such endpoints file"):
        parse_endpoints(str(tmp_path / "missing.yaml"))


def test_cli_takes_a_comma_separated_pool_and_rejects_a_bad_one(servers, monkeypatch):
    a, b = _start("a"), _start("b")
    servers += [a, b]
    runner = CliRunner()
    res = runner.invoke(cli, ["llm", "ping", "--model", "openai-compatible/m", "--base-url",
                              f"{_url(a)},{_url(b)}", "--no-cache"])
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("THOUGHTTRACE_BASE_URL", f"{_url(a)},ftp://x")
    res = runner.invoke(cli, ["llm", "ping", "--model", "openai-compatible/m", "--no-cache"])
    assert res.exit_code == 1
    assert "not an http(s) URL" in res.output and "Traceback" not in res.output
