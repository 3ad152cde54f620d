"""Transient vs permanent errors against real loopback HTTP servers (no model needed)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thoughttrace.llm import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    RetriesExhaustedError,
    get_model,
)

OK_BODY = {
    "choices": [{"message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, body) of the server's script."""

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        server = self.server
        server.hits += 1  # type: ignore[attr-defined]
        status, body = server.script[min(server.hits - 1, len(server.script) - 1)]  # type: ignore[attr-defined]
        sse = isinstance(body, str)
        data = body.encode() if sse else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream" if sse else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.hits = 0  # type: ignore[attr-defined]
    server.script = [(200, OK_BODY)]  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_gives_typed_error_within_the_timeout():
    model = get_model(
        "openai-compatible/x", base_url=f"http://127.0.0.1:{_free_port()}/v1", cache=False,
        max_retries=2, backoff_seconds=0.01, timeout=2.0,
    )
    start = time.perf_counter()
    with pytest.raises(RetriesExhaustedError) as info:
        model.generate("hi")
    assert isinstance(info.value.last, ConnectionFailedError)
    assert info.value.attempts == 3
    assert time.perf_counter() - start < 5.0


def test_transient_5xx_is_retried_then_succeeds(scripted_server):
    scripted_server.script = [(503, {"error": "busy"}), (429, {"error": "slow down"}), (200, OK_BODY)]
    model = get_model("openai-compatible/x", base_url=_url(scripted_server), cache=False, backoff_seconds=0.01)
    assert model.generate("hi").text == "fine"
    assert scripted_server.hits == 3
    assert model.usage.report().retries == 2


def test_retries_are_bounded(scripted_server):
    scripted_server.script = [(500, {"error": "down"})]
    model = get_model("openai-compatible/x", base_url=_url(scripted_server), cache=False, max_retries=3,
                      backoff_seconds=0.01)
    with pytest.raises(RetriesExhaustedError):
        model.generate("hi")
    assert scripted_server.hits == 4


@pytest.mark.parametrize("status,error", [(400, BadRequestError), (401, AuthenticationError)])
def test_permanent_errors_are_not_retried(scripted_server, status, error):
    scripted_server.script = [(status, {"error": "no"})]
    model = get_model("openai-compatible/x", base_url=_url(scripted_server), cache=False, backoff_seconds=0.01)
    with pytest.raises(error):
        model.generate("hi")
    assert scripted_server.hits == 1


def test_keys_and_urls_do_not_enter_the_cache_key(scripted_server, tmp_path):
    cache = tmp_path / "c.sqlite"
    first = get_model("openai-compatible/x", base_url=_url(scripted_server), api_key="k1", cache=cache)
    first.generate("hi")
    other = get_model("openai-compatible/x", base_url="http://127.0.0.1:1/v1", api_key="k2", cache=cache)
    assert other.generate("hi").cached
    assert scripted_server.hits == 1


SSE_BODY = "".join(
    "data: " + json.dumps({"choices": [{"delta": {"content": piece}, "finish_reason": None}]}) + "\n\n"
    for piece in ["Hel", "lo", " there"]
) + "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}) + "\n\ndata: [DONE]\n\n"


def test_stream_is_retried_before_its_first_piece(scripted_server):
    scripted_server.script = [(503, {"error": "busy"}), (200, SSE_BODY)]
    model = get_model("openai-compatible/x", base_url=_url(scripted_server), cache=False, backoff_seconds=0.01)

    async def collect() -> list[str]:
        return [p async for p in model.astream("hi")]

    assert model.run(collect()) == ["Hel", "lo", " there"]
    report = model.usage.report()
    assert scripted_server.hits == 2 and report.retries == 1
    assert (report.prompt_tokens, report.completion_tokens) == (4, 3)


def test_stream_permanent_error_is_typed(scripted_server):
    scripted_server.script = [(401, {"error": "no key"})]
    model = get_model("openai-compatible/x", base_url=_url(scripted_server), cache=False)

    async def collect() -> list[str]:
        return [p async for p in model.astream("hi")]

    with pytest.raises(AuthenticationError):
        model.run(collect())
