"""A fast, deterministic OpenAI-compatible HTTP server for scale tests and benches (not a model).

`python -m thoughttrace.llm.fakeserver --port 0` prints its base URL and serves until killed. A chat request
is answered from a hash of its messages: with a JSON-schema `response_format` whose property has an `enum`,
one of the allowed values (`{"label": ...}`), else a fixed short text. The same request always gets the same
answer from every instance, so a pool of these behaves like replicas of one model. `GET /stats` returns the
number of completions served (how a test proves that a rerun made no model call) and the most requests it
ever had in flight at once (how a test proves a limit held across processes), and `busy_seconds`, from the
first request received to the last answered (a bench measures every client on this one clock); `GET /reset`
sets counters, that clock and the latency draws back to the start (every client then meets the same delays).

Options for scale tests: `--latency-ms M` delays each answer by a lognormal time with median M ms and p99 =
10 x M (heavy-tailed, as real servers are); `--hang` accepts connections and never answers (a stuck server);
`--completions echo|ignore-echo|none` serves `/v1/completions` with prompt log-probs (one token per
character), ignoring `echo` (only the generated token's log-prob, as some servers do), or not at all (404).

Plain asyncio with HTTP/1.1 keep-alive: thousands of requests a second on one core, which is what a bench of
the batch engine needs (a real model would measure the model, not the engine).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

#: lognormal sigma whose p99 is 10x the median: exp(2.326 * sigma) = 10
HEAVY_TAIL_SIGMA = math.log(10) / 2.3263


class FakeOpenAIServer:
    def __init__(self, name: str = "fake", *, latency_ms: float = 0.0, hang: bool = False,
                 completions: str = "none", seed: int | None = None) -> None:
        self.name = name
        self.completions = 0
        self.latency_ms = latency_ms
        self.hang = hang
        self.completions_mode = completions
        self.in_flight = 0
        self.max_in_flight = 0
        self.seed = seed
        self._rng = random.Random(seed)
        #: monotonic times of the first POST received and the last answered since start or `GET /reset`
        self.first_at: float | None = None
        self.last_at: float | None = None

    def reset(self) -> None:
        """Counters, timestamps and latency draws back to the start (`GET /reset`): a bench gives every client
        the same sequence of delays, in arrival order, from one server process."""
        self.completions = 0
        self.max_in_flight = 0
        self.first_at = self.last_at = None
        self._rng = random.Random(self.seed)

    def delay(self) -> float:
        """Seconds to wait before this answer: lognormal, median latency_ms, p99 10x the median."""
        if self.latency_ms <= 0:
            return 0.0
        return self.latency_ms / 1000.0 * self._rng.lognormvariate(0.0, HEAVY_TAIL_SIGMA)

    def text_completion(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """`/v1/completions`: one token per character, log-prob -0.1 each; `echo` honoured or ignored."""
        if self.completions_mode == "none":
            return 404, {"error": {"message": "no route /v1/completions"}}
        self.completions += 1
        prompt = str(body.get("prompt", ""))
        echo = bool(body.get("echo")) and self.completions_mode == "echo"
        text = prompt if echo else ""
        offsets = list(range(len(text))) + [len(prompt)]
        values: list[float | None] = [None] + [-0.1] * (len(text) - 1) + [-0.5] if text else [-0.5]
        return 200, {"id": "fake", "object": "text_completion", "model": body.get("model", "fake"),
                     "choices": [{"index": 0, "text": text + "x", "finish_reason": "length",
                                  "logprobs": {"tokens": list(text) + ["x"], "text_offset": offsets,
                                               "token_logprobs": values}}],
                     "usage": {"prompt_tokens": len(prompt), "completion_tokens": 1}}

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        self.completions += 1
        digest = hashlib.sha256(json.dumps(body.get("messages"), sort_keys=True).encode()).digest()
        text = "fine"
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
        for key, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and prop.get("enum"):
                text = json.dumps({key: prop["enum"][digest[0] % len(prop["enum"])]})
                break
        return {"id": "fake", "object": "chat.completion", "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(json.dumps(body.get("messages"))) // 4, "completion_tokens": 4}}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                await self.reply(writer, method, path, raw)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def reply(self, writer: asyncio.StreamWriter, method: str, path: str, raw: bytes) -> None:
        """Answer one parsed request (a subclass overrides this to stream, say; the HTTP parsing stays here)."""
        if self.hang and not path.endswith("/stats"):
            await asyncio.sleep(3600)
        status, payload = await self.timed(method, path, raw)
        data = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
                     "\r\n\r\n".encode() + data)
        await writer.drain()

    async def timed(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Count a POST in flight for its whole (delayed) life, then answer it."""
        if method != "POST":
            return self.route(method, path, raw)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.first_at is None:
            self.first_at = time.monotonic()
        try:
            wait = self.delay()
            if wait:
                await asyncio.sleep(wait)
            return self.route(method, path, raw)
        finally:
            self.in_flight -= 1
            self.last_at = time.monotonic()

    def route(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path.endswith("/stats"):
            busy = (self.last_at - self.first_at) if self.first_at is not None and self.last_at is not None else None
            return 200, {"completions": self.completions, "name": self.name, "in_flight": self.in_flight,
                         "max_in_flight": self.max_in_flight, "busy_seconds": busy, "first_at": self.first_at,
                         "last_at": self.last_at}
        if method == "GET" and path.endswith("/reset"):
            self.reset()
            return 200, {"reset": True}
        if method == "GET":
            return 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]}
        if path.endswith("/chat/completions"):
            return 200, self.answer(json.loads(raw or b"{}"))
        if path.endswith("/completions"):
            return self.text_completion(json.loads(raw or b"{}"))
        return 404, {"error": {"message": f"no route {path}"}}


async def serve(host: str, port: int, name: str, ready: Any = None, **options: Any) -> None:
    fake = FakeOpenAIServer(name, **options)
    server = await asyncio.start_server(fake.handle, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}/v1"
    if ready is not None:
        ready(url)
    else:
        print(url, flush=True)
    async with server:
        await server.serve_forever()


def stats_of(url: str) -> dict[str, Any]:
    """`GET /stats` of the fake server whose base URL (with or without /v1) is `url`."""
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/v1/stats", timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def kill_when_served(cmd: Sequence[str], url: str, served: int, sig: int = signal.SIGKILL,
                     env: Mapping[str, str] | None = None, timeout: float = 60.0) -> int:
    """Run `cmd`, send it `sig` once the fake server at `url` has served `served` completions, and return
    the completions served half a second later (requests in flight at the kill finish at the server).

    Why here: the durability tests of every command (align, evals, batch) kill a client mid-run the same way
    and then compare what the server served with what the ledger counted.
    """
    run = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(env) if env else None)
    deadline = time.time() + timeout
    while stats_of(url)["completions"] < served and time.time() < deadline and run.poll() is None:
        time.sleep(0.02)
    if run.poll() is not None:
        raise RuntimeError(f"the run ended (exit {run.returncode}) before {served} completions were served")
    run.send_signal(sig)
    run.communicate(timeout=30)
    if run.returncode == 0:
        raise RuntimeError("the run finished before the signal reached it")
    time.sleep(0.5)
    return int(stats_of(url)["completions"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="fake")
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="median answer delay (lognormal, p99 = 10x the median); 0: none")
    ap.add_argument("--hang", action="store_true", help="never answer (a stuck server)")
    ap.add_argument("--completions", choices=["echo", "ignore-echo", "none"], default="none",
                    help="/v1/completions: prompt log-probs, echo ignored, or 404")
    ap.add_argument("--seed", type=int, default=None, help="seed of the latency draws")
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.name, latency_ms=args.latency_ms, hang=args.hang,
                          completions=args.completions, seed=args.seed))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
