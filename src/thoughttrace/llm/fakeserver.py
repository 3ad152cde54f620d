"""A fast, deterministic OpenAI-compatible HTTP server for scale tests and benches (not a model).

`python -m thoughttrace.llm.fakeserver --port 0` prints its base URL and serves until killed. A chat request
is answered from a hash of its messages: with a JSON-schema `response_format` whose property has an `enum`,
one of the allowed values (`{"label": ...}`), else a fixed short text. The same request always gets the same
answer from every instance, so a pool of these behaves like replicas of one model. `GET /stats` returns the
number of completions served (how a test proves that a rerun made no model call).

Plain asyncio with HTTP/1.1 keep-alive: thousands of requests a second on one core, which is what a bench of
the batch engine needs (a real model would measure the model, not the engine).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from typing import Any


class FakeOpenAIServer:
    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.completions = 0

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
                status, payload = self.route(method, path, raw)
                data = json.dumps(payload).encode()
                writer.write(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
                             "\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    def route(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path.endswith("/stats"):
            return 200, {"completions": self.completions, "name": self.name}
        if method == "GET":
            return 200, {"object": "list", "data": [{"id": "fake", "object": "model"}]}
        if path.endswith("/chat/completions"):
            return 200, self.answer(json.loads(raw or b"{}"))
        return 404, {"error": {"message": f"no route {path}"}}


async def serve(host: str, port: int, name: str, ready: Any = None) -> None:
    fake = FakeOpenAIServer(name)
    server = await asyncio.start_server(fake.handle, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}/v1"
    if ready is not None:
        ready(url)
    else:
        print(url, flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="fake")
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.name))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
