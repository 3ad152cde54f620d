"""Endpoint-pool failure rules against real loopback servers: a timeout takes a server out like a refused
connection does, a stream that already sent text is never restarted elsewhere, a taken-out server that
answers again is probed back in (and one that does not stays out, probed less and less often).

Only what a user sees is asserted (which server answered, how often each was hit, the text, the error),
never which endpoint the rotation picks first: the pool's routing may start anywhere.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thoughttrace.llm import LLMError, get_model
from thoughttrace.llm.pool import Endpoint, EndpointPool


class _Handler(BaseHTTPRequestHandler):
    """An OpenAI-style server answering with its name; `delay` seconds late; `cut`: a stream dropped mid-way."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        self._send({"data": []})

    def do_POST(self) -> None:  # noqa: N802
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with srv.lock:  # type: ignore[attr-defined]
            srv.hits += 1  # type: ignore[attr-defined]
        time.sleep(srv.delay)  # type: ignore[attr-defined]
        name = srv.name  # type: ignore[attr-defined]
        if body.get("stream"):
            first = f"data: {json.dumps({'choices': [{'delta': {'content': f'from {name}'}}]})}\n\n".encode()
            rest = (f"data: {json.dumps({'choices': [{'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
                    f"data: {json.dumps({'choices': [], 'usage': {'prompt_tokens': 5, 'completion_tokens': 2}})}"
                    "\n\ndata: [DONE]\n\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(first) + len(rest)))
            self.end_headers()
            self.wfile.write(first)
            self.wfile.flush()
            if srv.cut:  # type: ignore[attr-defined]
                self.close_connection = True  # the server dies after its first chunk: the body stays short
                return
            self.wfile.write(rest)
            return
        self._send({"choices": [{"message": {"role": "assistant", "content": f"from {name}"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2}})

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def start() -> Iterator[object]:
    started: list[ThreadingHTTPServer] = []

    def go(name: str, *, port: int = 0, delay: float = 0.0, cut: bool = False) -> tuple[ThreadingHTTPServer, str]:
        srv = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        srv.daemon_threads = True
        srv.name, srv.delay, srv.cut, srv.hits = name, delay, cut, 0  # type: ignore[attr-defined]
        srv.lock = threading.Lock()  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"

    yield go
    for s in started:
        s.shutdown()
        s.server_close()


def test_a_server_that_times_out_is_taken_out_like_a_refused_one(start) -> None:
    slow, slow_url = start("slow", delay=4.0)  # type: ignore[operator]
    good, good_url = start("good")  # type: ignore[operator]
    # a timeout far above what the good server needs even on a loaded machine, far below the slow one's delay
    model = get_model("openai-compatible/m", base_url=f"{slow_url},{good_url}", cache=False, max_retries=0,
                      timeout=1.0, probe_interval=60.0)
    texts = [model.generate(f"q{i}", max_tokens=4).text for i in range(4)]
    assert texts == ["from good"] * 4  # the request that met the timeout moved on to the other server
    # tried once (any fair rotation reaches it within four requests), then out of the rotation
    assert slow.hits == 1  # type: ignore[attr-defined]
    by_endpoint = model.usage.report().by_endpoint
    assert by_endpoint[slow_url]["taken_out"] == 1 and by_endpoint[slow_url]["requests"] == 1
    assert model.backend.endpoint_stats()[slow_url]["up"] is False


def test_a_stream_that_sent_text_is_not_restarted_on_another_server(start) -> None:
    dying, dying_url = start("dying", cut=True)  # type: ignore[operator]
    other, other_url = start("other")  # type: ignore[operator]
    got: list[str] = []

    async def go(model) -> None:
        async for piece in model.astream("q", max_tokens=4):
            got.append(piece)

    # sequential streams until the dying server has been picked (a fair rotation picks it within two)
    error: LLMError | None = None
    earlier = 0  # healthy streams before the dying server's turn
    for _ in range(2):
        model = get_model("openai-compatible/m", base_url=f"{dying_url},{other_url}", cache=False, max_retries=2,
                          backoff_seconds=0.01)
        got.clear()
        try:
            model.run(go(model))
        except LLMError as exc:
            error = exc
        if dying.hits:  # type: ignore[attr-defined]
            break
        earlier += 1
    assert dying.hits == 1 and error is not None  # type: ignore[attr-defined]  # the caller hears of the failure
    # the text already given to the caller stays the only text: no second answer appended from elsewhere
    assert got == ["from dying"], got
    assert other.hits == earlier  # type: ignore[attr-defined]  # only the earlier, healthy streams reached it


def test_a_taken_out_server_is_probed_back_in_and_a_dead_one_stays_out(start) -> None:
    up, up_url = start("up")  # type: ignore[operator]
    port = _free_port()
    back_url = f"http://127.0.0.1:{port}/v1"
    model = get_model("openai-compatible/m", base_url=f"{back_url},{up_url}", cache=False, probe_interval=0.2,
                      max_retries=0)
    for i in range(3):
        assert model.generate(f"a{i}", max_tokens=4).text == "from up"
    assert model.backend.endpoint_stats()[back_url]["up"] is False
    back, _ = start("back", port=port)  # type: ignore[operator]  # the server comes (back) up on its address
    time.sleep(0.3)
    texts = [model.generate(f"b{i}", max_tokens=4).text for i in range(6)]
    assert model.backend.endpoint_stats()[back_url]["up"] is True
    assert texts.count("from back") >= 2 and back.hits == texts.count("from back")  # type: ignore[attr-defined]


def test_probes_of_a_dead_server_come_less_and_less_often() -> None:
    a, b = Endpoint(url="http://127.0.0.1:1/v1"), Endpoint(url="http://127.0.0.1:2/v1")
    pool = EndpointPool([a, b], probe_interval=0.1, max_probe_interval=0.4)
    probed: list[str] = []

    async def dead(ep: Endpoint) -> bool:
        probed.append(ep.url)
        pool.probe_failed(ep)
        return False

    async def alive(ep: Endpoint) -> bool:
        probed.append(ep.url)
        return True

    async def acquire(probe) -> Endpoint:
        ep = await pool.acquire(set(), probe)
        await pool.release(ep)
        return ep

    pool.take_out(a)
    assert asyncio.run(acquire(dead)) is b and probed == []  # not due yet
    intervals = []
    for _ in range(4):
        time.sleep(a.next_probe - time.monotonic() + 0.01)
        assert asyncio.run(acquire(dead)) is b
        intervals.append(round(a.probe_interval, 3))
    assert probed == [a.url] * 4
    assert intervals == [0.2, 0.4, 0.4, 0.4]  # doubled after each failed probe, up to the cap
    time.sleep(a.next_probe - time.monotonic() + 0.01)
    picked = {asyncio.run(acquire(alive)).url for _ in range(4)}
    assert a.up and picked == {a.url, b.url}  # back in the rotation
