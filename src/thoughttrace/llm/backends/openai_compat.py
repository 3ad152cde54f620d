"""`openai-compatible/NAME` and `openai/NAME`: any server speaking the OpenAI API, over httpx.

vLLM, SGLang, llama.cpp server, Ollama, OpenRouter and OpenAI itself. `score` works where the server
returns prompt log-probs (`echo` with `logprobs`, as vLLM does) or accepts a GBNF `grammar` (llama.cpp),
and fails with a CapabilityError otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httpx

from ..base import BACKENDS_WITH, Backend
from ..errors import (
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    ConnectionFailedError,
    ContextLengthError,
    LLMError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from ..types import ChatMessage, Generation, GenerationConfig, LogprobResult, ScoreResult, TokenLogprob, Usage
from .local import gbnf_literal, sum_forced_logprobs

_CONTEXT_HINTS = ("context length", "context size", "maximum context", "too many tokens", "exceeds the available")


class OpenAICompatBackend(Backend):
    kind: ClassVar[str] = "openai-compatible"
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate", "next_token_logprobs", "score"})

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
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._clients: dict[int, httpx.AsyncClient] = {}
        self.score_method = score_method
        self.extra_body = dict(extra_body or {})

    def _client(self) -> httpx.AsyncClient:
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

    def _chat_body(self, messages: list[ChatMessage], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [m.model_dump() for m in messages],
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed + config.sample_index,
        }
        if config.stop:
            body["stop"] = list(config.stop)
        if config.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": config.json_schema},
            }
        return body

    async def generate(self, messages: list[ChatMessage], config: GenerationConfig) -> Generation:
        data = await self._post("/chat/completions", self._chat_body(messages, config))
        choice = data["choices"][0]
        return Generation(
            text=(choice.get("message") or {}).get("content") or "",
            usage=_usage(data),
            finish_reason=choice.get("finish_reason"),
        )

    async def next_token_logprobs(
        self, messages: list[ChatMessage], k: int, config: GenerationConfig
    ) -> LogprobResult:
        body = self._chat_body(messages, config.model_copy(update={"max_tokens": 1, "temperature": 0.0}))
        body.update({"logprobs": True, "top_logprobs": k})
        data = await self._post("/chat/completions", body)
        content = ((data["choices"][0].get("logprobs") or {}).get("content")) or []
        if not content:
            raise CapabilityError("next_token_logprobs", self.model_id, BACKENDS_WITH["next_token_logprobs"])
        top = [TokenLogprob(token=t["token"], logprob=t["logprob"]) for t in content[0]["top_logprobs"][:k]]
        return LogprobResult(top=top, usage=_usage(data))

    async def score(self, prompt: str, continuations: list[str]) -> ScoreResult:
        out: list[float] = []
        usage = Usage()
        for cont in continuations:
            value, u = await self._score_one(prompt, cont)
            out.append(value)
            usage = Usage(prompt_tokens=usage.prompt_tokens + u.prompt_tokens,
                          completion_tokens=usage.completion_tokens + u.completion_tokens)
        return ScoreResult(logprobs=out, usage=usage)

    async def _score_one(self, prompt: str, cont: str) -> tuple[float, Usage]:
        if self.score_method in {"auto", "echo"}:
            data = await self._post(
                "/completions",
                {"model": self.name, "prompt": prompt + cont, "max_tokens": 1, "echo": True, "logprobs": 1,
                 "temperature": 0.0},
            )
            lp = data["choices"][0].get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if offsets and values and len(offsets) == len(values):
                total = sum(v for off, v in zip(offsets, values) if off >= len(prompt) and off < len(prompt + cont)
                            and v is not None)
                return float(total), _usage(data)
            if self.score_method == "echo":
                raise CapabilityError("score", self.model_id, BACKENDS_WITH["score"])
        data = await self._post(
            "/completions",
            {"model": self.name, "prompt": prompt, "max_tokens": len(cont.encode()) + 8, "temperature": 0.0,
             "logprobs": 1, "grammar": f"root ::= {gbnf_literal(cont)}"},
        )
        content = ((data["choices"][0].get("logprobs") or {}).get("content")) or []
        if not content:
            raise CapabilityError("score", self.model_id, BACKENDS_WITH["score"])
        total, exact = sum_forced_logprobs(content, cont)
        if not exact:
            raise CapabilityError("score", self.model_id, BACKENDS_WITH["score"])
        return total, _usage(data)

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


def _usage(data: dict[str, Any]) -> Usage:
    u = data.get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0), completion_tokens=int(u.get("completion_tokens") or 0))
