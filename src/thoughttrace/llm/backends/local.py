"""`local`: the embedded default, llama.cpp in-process via xllamacpp, loading a GGUF.

It speaks the OpenAI protocol to llama.cpp's in-process server (dicts, no HTTP). Capabilities: generate;
next_token_logprobs (top_logprobs of the first generated token, pre-sampling); score (exact log-probs of a
continuation: decoding is constrained by a grammar that only admits the continuation, and llama.cpp
reports each forced token's pre-sampling log-probability).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ..errors import BadRequestError, ContextLengthError, LLMError, RequestTimeoutError, ServerError
from ..weights import checksum_of
from .llamacpp import POOL, ServerSettings, default_threads, resolve_model_path
from .openai_protocol import OpenAIProtocolBackend, tokenize_at


def raise_for_error(response: dict[str, Any]) -> None:
    """Map llama.cpp's error objects onto the typed errors."""
    err = response.get("error")
    if not err:
        return
    message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
    code = err.get("code", 500) if isinstance(err, dict) else 500
    etype = err.get("type", "") if isinstance(err, dict) else ""
    if "context" in etype or "context size" in message:
        raise ContextLengthError(f"{message}; shorten the prompt or raise n_ctx (THOUGHTTRACE_N_CTX)")
    if 400 <= int(code) < 500:
        raise BadRequestError(message)
    raise ServerError(message)


class LocalBackend(OpenAIProtocolBackend):
    kind: ClassVar[str] = "local"
    score_method = "grammar"

    def __init__(
        self,
        name_or_path: str = "default",
        *,
        threads: int | None = None,
        n_ctx: int | None = None,
        parallel: int = 1,
        timeout: float | None = None,
        max_connections: int | None = None,
        reproducible: bool = False,
    ) -> None:
        # reproducible: no prompt-cache reuse, so outputs do not depend on request order (server.LocalServer explains)
        if reproducible and parallel != 1:
            raise ValueError("a reproducible local model serves one request at a time: use parallel=1")
        path = resolve_model_path(name_or_path)
        self.path = path
        self.settings = ServerSettings(
            path=str(path),
            threads=threads or default_threads(),
            n_ctx=n_ctx or int(os.environ.get("THOUGHTTRACE_N_CTX", "8192")),
            parallel=parallel,
            reuse_prompt=not reproducible,
        )
        label = name_or_path if name_or_path != "default" else "qwen0.5b"
        super().__init__(
            model_id=f"local:{label}", endpoint=f"local:{path}", max_connections=max_connections or parallel
        )
        self.timeout = timeout
        self._checksum: str | None = None

    def fingerprint(self) -> str:
        if self._checksum is None:
            self._checksum = checksum_of(self.path)
        return f"gguf:{self._checksum}"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        server = POOL.get(self.settings)
        handler = server.handle_chat_completions if path == "/chat/completions" else server.handle_completions
        call = asyncio.to_thread(handler, body)
        try:
            response = await (asyncio.wait_for(call, self.timeout) if self.timeout else call)
        except TimeoutError as exc:
            raise RequestTimeoutError(f"local model did not answer within {self.timeout} s") from exc
        if not isinstance(response, dict):
            raise LLMError(f"llama.cpp returned {type(response).__name__}, expected a dict")
        raise_for_error(response)
        return response

    async def _tokenize(self, text: str) -> list[int] | None:
        """llama.cpp's tokenizer, through the in-process server's own loopback `/tokenize` route."""
        server = POOL.get(self.settings)
        return await tokenize_at(str(server.listening_address), text, timeout=self.timeout or 30.0)

    async def _post_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """llama.cpp calls back with each chunk from its own thread; chunks cross to this loop by a queue."""
        server = POOL.get(self.settings)
        handler = server.handle_chat_completions if path == "/chat/completions" else server.handle_completions
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def on_chunk(chunk: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk if isinstance(chunk, dict) else {"error": str(chunk)})

        def run() -> None:
            try:
                handler(body, on_chunk)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = asyncio.ensure_future(asyncio.to_thread(run))
        deadline = loop.time() + self.timeout if self.timeout else None
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    chunk = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError as exc:
                    raise RequestTimeoutError(f"local model did not finish within {self.timeout} s") from exc
                if chunk is None:
                    break
                raise_for_error(chunk)
                yield chunk
        finally:
            if worker.done():
                worker.result()  # surfaces an exception from the handler itself
