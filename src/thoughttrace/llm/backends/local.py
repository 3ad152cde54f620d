"""`local`: the embedded default, llama.cpp in-process via xllamacpp, loading a GGUF.

Capabilities: generate; next_token_logprobs (top_logprobs of the first generated token, pre-sampling);
score (exact log-probs of a continuation: decoding is constrained by a grammar that only admits the
continuation, and llama.cpp reports each forced token's pre-sampling log-probability).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from ..base import Backend
from ..errors import BadRequestError, ContextLengthError, LLMError, RequestTimeoutError, ServerError
from ..types import ChatMessage, Generation, GenerationConfig, LogprobResult, ScoreResult, TokenLogprob, Usage
from ..weights import checksum_of
from .llamacpp import POOL, ServerSettings, default_threads, resolve_model_path


def gbnf_literal(text: str) -> str:
    """A GBNF string literal that matches `text` exactly."""
    out = []
    for ch in text:
        if ch in {'"', "\\"}:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def sum_forced_logprobs(tokens: list[dict[str, Any]], continuation: str) -> tuple[float, bool]:
    """Sum the log-probs of grammar-forced tokens that cover `continuation`; also whether they cover it exactly.

    The grammar forces an end-of-generation token after the continuation: it is not part of it.
    """
    target = continuation.encode("utf-8")
    covered = b""
    total = 0.0
    for tok in tokens:
        if len(covered) >= len(target):
            break
        covered += bytes(tok.get("bytes") or tok["token"].encode("utf-8"))
        total += tok["logprob"]
    return total, covered == target


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


class LocalBackend(Backend):
    kind: ClassVar[str] = "local"
    capabilities: ClassVar[frozenset[str]] = frozenset({"generate", "next_token_logprobs", "score"})

    def __init__(
        self,
        name_or_path: str = "default",
        *,
        threads: int | None = None,
        n_ctx: int | None = None,
        parallel: int = 1,
        timeout: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        path = resolve_model_path(name_or_path)
        self.path = path
        self.settings = ServerSettings(
            path=str(path),
            threads=threads or default_threads(),
            n_ctx=n_ctx or int(os.environ.get("THOUGHTTRACE_N_CTX", "8192")),
            parallel=parallel,
        )
        label = name_or_path if name_or_path != "default" else "qwen0.5b"
        super().__init__(
            model_id=f"local:{label}", endpoint=f"local:{path}", max_connections=max_connections or parallel
        )
        self.timeout = timeout
        self._checksum: str | None = None

    @property
    def server(self) -> Any:
        return POOL.get(self.settings)

    def fingerprint(self) -> str:
        if self._checksum is None:
            self._checksum = checksum_of(self.path)
        return f"gguf:{self._checksum}"

    async def _request(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        handler = server.handle_chat_completions if route == "chat" else server.handle_completions
        call = asyncio.to_thread(handler, body)
        try:
            response = await (asyncio.wait_for(call, self.timeout) if self.timeout else call)
        except TimeoutError as exc:
            raise RequestTimeoutError(f"local model did not answer within {self.timeout} s") from exc
        if not isinstance(response, dict):
            raise LLMError(f"llama.cpp returned {type(response).__name__}, expected a dict")
        raise_for_error(response)
        return response

    @staticmethod
    def _body(messages: list[ChatMessage], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [m.model_dump() for m in messages],
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed + config.sample_index,
        }
        if config.stop:
            body["stop"] = list(config.stop)
        if config.json_schema is not None:
            body["response_format"] = {"type": "json_object", "schema": config.json_schema}
        return body

    async def generate(self, messages: list[ChatMessage], config: GenerationConfig) -> Generation:
        response = await self._request("chat", self._body(messages, config))
        choice = response["choices"][0]
        return Generation(
            text=choice["message"].get("content") or "",
            usage=_usage(response),
            finish_reason=choice.get("finish_reason"),
        )

    async def next_token_logprobs(
        self, messages: list[ChatMessage], k: int, config: GenerationConfig
    ) -> LogprobResult:
        body = self._body(messages, config.model_copy(update={"max_tokens": 1, "temperature": 0.0}))
        body.update({"logprobs": True, "top_logprobs": k})
        response = await self._request("chat", body)
        content = response["choices"][0].get("logprobs", {}).get("content") or []
        if not content:
            raise ServerError("llama.cpp returned no log-probabilities")
        top = [TokenLogprob(token=t["token"], logprob=t["logprob"]) for t in content[0]["top_logprobs"][:k]]
        return LogprobResult(top=top, usage=_usage(response))

    async def score(self, prompt: str, continuations: list[str]) -> ScoreResult:
        results = []
        usage = Usage()
        for cont in continuations:
            if not cont:
                results.append(0.0)
                continue
            body = {
                "prompt": prompt,
                "max_tokens": len(cont.encode("utf-8")) + 8,
                "temperature": 0.0,
                "logprobs": 1,
                "grammar": f"root ::= {gbnf_literal(cont)}",
            }
            response = await self._request("completion", body)
            total, _ = sum_forced_logprobs(response["choices"][0]["logprobs"]["content"], cont)
            results.append(total)
            u = _usage(response)
            usage = Usage(prompt_tokens=usage.prompt_tokens + u.prompt_tokens,
                          completion_tokens=usage.completion_tokens + u.completion_tokens)
        return ScoreResult(logprobs=results, usage=usage)

    async def aclose(self) -> None:
        """Weights stay pooled for the process; nothing per-backend to release."""


def _usage(response: dict[str, Any]) -> Usage:
    u = response.get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens", 0)), completion_tokens=int(u.get("completion_tokens", 0)))
