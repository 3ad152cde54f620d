"""`openai-compatible/NAME` and `openai/NAME`: any server speaking the OpenAI API, over httpx.

vLLM, SGLang, llama.cpp server, Ollama, OpenRouter and OpenAI itself. `score` works where the server
returns prompt log-probs (`echo` with `logprobs`, as vLLM does) or accepts a GBNF `grammar` (llama.cpp),
and fails with a CapabilityError otherwise.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    ContextLengthError,
    LLMError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from .openai_protocol import OpenAIProtocolBackend

_CONTEXT_HINTS = ("context length", "context size", "maximum context", "too many tokens", "exceeds the available")


class OpenAICompatBackend(OpenAIProtocolBackend):
    kind: ClassVar[str] = "openai-compatible"

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_connections: int = 8,
        kind_name: str = "openai-compatible",
        score_method: str = "auto",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model_id=f"{kind_name}/{name}", endpoint=base_url.rstrip("/"), max_connections=max_connections)
        self.request_model = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._clients: dict[int, httpx.AsyncClient] = {}
        self.score_method = score_method
        self.extra_body = dict(extra_body or {})

    def _client(self) -> httpx.AsyncClient:
        """One client per event loop (an httpx client cannot cross loops)."""
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.get(loop_id)
        if client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
            client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self._timeout, limits=limits)
            self._clients[loop_id] = client
        return client

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client().post(path, json={**self.extra_body, **body})
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(f"{self.base_url}{path}: no answer within the timeout ({exc})") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ConnectionFailedError(f"{self.base_url}{path}: {type(exc).__name__}: {exc}; is the server up?") from exc
        if response.status_code >= 400:
            _raise_http(response)
        try:
            data: dict[str, Any] = response.json()
        except ValueError as exc:
            raise ServerError(f"{self.base_url}{path} answered non-JSON: {response.text[:200]!r}") from exc
        if isinstance(data, dict) and data.get("error"):
            raise ServerError(f"{self.base_url}{path}: {data['error']}")
        return data

    async def _post_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events: one `data: {...}` line a chunk, `data: [DONE]` at the end."""
        try:
            async with self._client().stream("POST", path, json={**self.extra_body, **body}) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_http(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError as exc:
                        raise ServerError(f"{self.base_url}{path}: a stream chunk is not JSON: {data[:200]!r}") from exc
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise ServerError(f"{self.base_url}{path}: {chunk['error']}")
                    yield chunk
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(f"{self.base_url}{path}: no answer within the timeout ({exc})") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ConnectionFailedError(f"{self.base_url}{path}: {type(exc).__name__}: {exc}; is the server up?") from exc

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            try:
                await client.aclose()
            except RuntimeError:
                pass  # its loop is gone already


def _raise_http(response: httpx.Response) -> None:
    status = response.status_code
    text = response.text[:500]
    if status == 429:
        raise RateLimitError(f"rate limited (429): {text}")
    if status >= 500:
        raise ServerError(f"server error {status}: {text}")
    if status in (401, 403):
        raise AuthenticationError(f"authentication failed ({status}): check the API key variable; {text}")
    if any(h in text.lower() for h in _CONTEXT_HINTS):
        raise ContextLengthError(f"prompt too long for the model's context ({status}): {text}")
    if status in (400, 404, 422):
        raise BadRequestError(f"bad request ({status}): {text}")
    raise LLMError(f"unexpected HTTP {status}: {text}")
