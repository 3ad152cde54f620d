"""`openai-compatible/NAME` and `openai/NAME`: any server speaking the OpenAI API, over httpx.

vLLM, SGLang, llama.cpp server, Ollama, OpenRouter and OpenAI itself. `score` works where the server
returns prompt log-probs (`echo` with `logprobs`, as vLLM does) or accepts a GBNF `grammar` (llama.cpp),
and fails with a CapabilityError otherwise. `base_url` may name several servers (an endpoint pool, pool.py):
requests are routed by load and fail over between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import httpx

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionFailedError,
    ContextLengthError,
    LLMError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransientError,
)
from ..pool import Endpoint, EndpointPool, parse_endpoints
from .openai_protocol import OpenAIProtocolBackend, tokenize_at, usage_of

#: connections per httpx client: an endpoint with more gets several clients, each request going to the least
#: busy. Why: httpcore's pool rescans every connection (and, for each idle one, every connection again) on
#: each request start and end, so one client of 16 connections spent 1.0 ms of CPU per request against a fast
#: server where 4 clients of 4 spent 0.84 (the same requests, bench/batch_scale.py's plain client, 3,000 each)
CONNECTIONS_PER_CLIENT = 4

_CONTEXT_HINTS = ("context length", "context size", "maximum context", "too many tokens", "exceeds the available")


class OpenAICompatBackend(OpenAIProtocolBackend):
    """One model name over one server or a pool of them (`base_url="URL1,URL2"` or an endpoints YAML)."""

    kind: ClassVar[str] = "openai-compatible"

    def __init__(
        self,
        name: str,
        *,
        base_url: str | list[Any],
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_connections: int = 8,
        kind_name: str = "openai-compatible",
        score_method: str = "auto",
        extra_body: dict[str, Any] | None = None,
        probe_interval: float = 1.0,
    ) -> None:
        endpoints = parse_endpoints(base_url, default_max_connections=max_connections, api_key=api_key)
        self.pool = EndpointPool(endpoints, probe_interval=probe_interval)
        joined = ",".join(e.url for e in endpoints)
        # the Model's own limit covers the whole pool; each endpoint's limit is kept by the pool
        super().__init__(model_id=f"{kind_name}/{name}", endpoint=joined, max_connections=self.pool.capacity)
        self.request_model = name
        self.base_url = endpoints[0].url if len(endpoints) == 1 else joined
        if not timeout or timeout <= 0:
            raise ConfigurationError("--timeout must be a number of seconds > 0")
        self._timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        #: per (event loop, endpoint): its httpx clients and how many requests each has in flight
        self._clients: dict[tuple[int, str], list[list[Any]]] = {}
        self.score_method = score_method
        self.extra_body = dict(extra_body or {})

    def _group(self, ep: Endpoint) -> list[list[Any]]:
        """The `[client, in_flight]` pairs of (event loop, endpoint): an httpx client cannot cross loops."""
        key = (id(asyncio.get_running_loop()), ep.url)
        group = self._clients.get(key)
        if group is None:
            headers = {"Authorization": f"Bearer {ep.api_key}"} if ep.api_key else {}
            n = max(1, math.ceil(ep.max_connections / CONNECTIONS_PER_CLIENT))
            per = math.ceil(ep.max_connections / n)  # n * per >= max_connections: a free slot is never queued
            limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
            group = [[httpx.AsyncClient(base_url=ep.url, headers=headers, timeout=self._ep_timeout(ep),
                                        limits=limits), 0] for _ in range(n)]
            self._clients[key] = group
        return group

    def _client(self, ep: Endpoint) -> httpx.AsyncClient:
        """A client of `ep` for a request that is not counted (a probe)."""
        client: httpx.AsyncClient = self._group(ep)[0][0]
        return client

    @contextlib.contextmanager
    def _lease(self, ep: Endpoint) -> Iterator[httpx.AsyncClient]:
        """The least busy client of `ep`, counted busy while the request runs (all on one event loop)."""
        group = self._group(ep)
        slot = group[0] if len(group) == 1 else min(group, key=lambda g: g[1])
        slot[1] += 1
        try:
            yield slot[0]
        finally:
            slot[1] -= 1

    def _ep_timeout(self, ep: Endpoint) -> httpx.Timeout:
        """The endpoint's own `timeout` from the fleet YAML, else the backend's (--timeout)."""
        if ep.timeout is None:
            return self._timeout
        return httpx.Timeout(ep.timeout, connect=min(self._timeout.connect or ep.timeout, ep.timeout))

    def _record(self, ep: Endpoint, **increments: float) -> None:
        if self.usage is not None:
            self.usage.record_endpoint(ep.url, **increments)

    async def _probe(self, ep: Endpoint) -> bool:
        """Is a taken-out endpoint answering again? Any HTTP answer below 500 to GET /models counts."""
        try:
            wait = min(2.0, ep.timeout or self._timeout.read or 2.0)
            response = await self._client(ep).get("/models", timeout=httpx.Timeout(wait))
        except httpx.HTTPError:
            self.pool.probe_failed(ep)
            return False
        if response.status_code >= 500:
            self.pool.probe_failed(ep)
            return False
        return True

    async def _acquire(self, tried: set[str]) -> Endpoint:
        ep = await self.pool.acquire(tried, self._probe)
        self._record(ep, requests=1)
        return ep

    def _failed(self, ep: Endpoint, exc: TransientError, tried: set[str]) -> bool:
        """Book a transient failure; True when another endpoint is left to try this request on."""
        tried.add(ep.url)
        self._record(ep, errors=1)
        if isinstance(exc, (ConnectionFailedError, RequestTimeoutError)):
            was_up = ep.up
            self.pool.take_out(ep)
            if was_up and not ep.up:
                self._record(ep, taken_out=1)
        now = time.monotonic()
        others = [e for e in self.pool.endpoints if e.url not in tried and (e.up or now >= e.next_probe)]
        if others:
            self._record(ep, failovers=1)
            return True
        return False

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        tried: set[str] = set()
        while True:
            ep = await self._acquire(tried)
            try:
                data = await self._post_to(ep, path, body)
            except TransientError as exc:
                if self._failed(ep, exc, tried):
                    continue
                raise
            finally:
                await self.pool.release(ep)
            u = usage_of(data)
            self._record(ep, prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens)
            return data

    async def _post_to(self, ep: Endpoint, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            with self._lease(ep) as client:
                response = await client.post(path, json={**self.extra_body, **body})
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(f"{ep.url}{path}: no answer within the timeout ({exc})") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ConnectionFailedError(f"{ep.url}{path}: {type(exc).__name__}: {exc}; is the server up?") from exc
        if response.status_code >= 400:
            _raise_http(response)
        try:
            data: dict[str, Any] = response.json()
        except ValueError as exc:
            raise ServerError(f"{ep.url}{path} answered non-JSON: {response.text[:200]!r}") from exc
        if isinstance(data, dict) and data.get("error"):
            raise ServerError(f"{ep.url}{path}: {data['error']}")
        return data

    async def _tokenize(self, text: str) -> list[int] | None:
        """The server's tokenizer (llama.cpp's root `/tokenize`), from the first endpoint that answers."""
        for ep in self.pool.endpoints:
            headers = {"Authorization": f"Bearer {ep.api_key}"} if ep.api_key else {}
            ids = await tokenize_at(ep.url, text, timeout=self._timeout.read or 30.0, headers=headers)
            if ids is not None:
                return ids
        return None

    async def _post_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events from one endpoint; a failure before the first chunk moves to another endpoint."""
        tried: set[str] = set()
        while True:
            ep = await self._acquire(tried)
            started = False
            try:
                async for chunk in self._stream_from(ep, path, body):
                    started = True
                    if chunk.get("usage"):
                        u = usage_of(chunk)
                        self._record(ep, prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens)
                    yield chunk
                return
            except TransientError as exc:
                if not started and self._failed(ep, exc, tried):
                    continue
                if started:
                    self._record(ep, errors=1)
                raise
            finally:
                await self.pool.release(ep)

    async def _stream_from(self, ep: Endpoint, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events: one `data: {...}` line a chunk, `data: [DONE]` at the end."""
        try:
            with self._lease(ep) as client:
                async with client.stream("POST", path, json={**self.extra_body, **body}) as response:
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
                            raise ServerError(f"{ep.url}{path}: a stream chunk is not JSON: {data[:200]!r}") from exc
                        if isinstance(chunk, dict) and chunk.get("error"):
                            raise ServerError(f"{ep.url}{path}: {chunk['error']}")
                        yield chunk
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(f"{ep.url}{path}: no answer within the timeout ({exc})") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ConnectionFailedError(f"{ep.url}{path}: {type(exc).__name__}: {exc}; is the server up?") from exc

    def endpoint_stats(self) -> dict[str, dict[str, Any]]:
        """Routing state and counters of every endpoint since this backend was made."""
        return self.pool.stats()

    async def aclose(self) -> None:
        groups, self._clients = self._clients, {}
        for group in groups.values():
            for client, _busy in group:
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
