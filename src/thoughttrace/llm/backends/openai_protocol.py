"""The OpenAI chat/completions protocol, shared by every backend that speaks it.

`openai-compatible` sends it over HTTP; `local` hands the same dicts to llama.cpp in-process. Subclasses
implement `_post(path, body)` only.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ..base import BACKENDS_WITH, Backend
from ..errors import CapabilityError
from ..types import ChatMessage, Generation, GenerationConfig, LogprobResult, ScoreResult, TokenLogprob, Usage


def gbnf_tokens(ids: list[int]) -> str:
    """A GBNF rule body that admits exactly these token ids, in order (llama.cpp's `<[id]>` token syntax).

    Why not a string literal: a literal lets the constrained greedy decoder spell the text with any tokens
    ("B" "an" "an" "a"), and the sum of those tokens' log-probs is the probability of that spelling, not of
    the text; the canonical tokenisation is the one a model (and transformers' or vLLM's score) uses.
    """
    return " ".join(f"<[{int(i)}]>" for i in ids)


def sum_token_logprobs(tokens: list[dict[str, Any]], ids: list[int]) -> tuple[float, bool]:
    """Sum the log-probs of the first len(ids) forced tokens; also whether they are exactly `ids`.

    llama.cpp reports each generated token's log-prob from the model's distribution before sampling (the
    grammar masks the choice, not the reported value); the end token forced after them is not counted.
    """
    head = tokens[: len(ids)]
    total = sum(float(t["logprob"]) for t in head)
    return total, [t.get("id") for t in head] == list(ids)


async def tokenize_at(root_url: str, text: str, *, timeout: float = 30.0,
                      headers: dict[str, str] | None = None) -> list[int] | None:
    """Token ids of `text` from a llama.cpp server's `/tokenize` (at the server root, not under /v1).

    None when the server has no such route (not llama.cpp): the caller then reports the missing capability.
    """
    import httpx

    url = root_url.rstrip("/")
    url = url[: -len("/v1")] if url.endswith("/v1") else url
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers or {}) as client:
            response = await client.post(url + "/tokenize", json={"content": text, "add_special": False})
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        tokens = response.json().get("tokens")
    except ValueError:
        return None
    if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
        return None
    return [int(t) for t in tokens]


def usage_of(data: dict[str, Any]) -> Usage:
    u = data.get("usage") or {}
    return Usage(prompt_tokens=int(u.get("prompt_tokens") or 0), completion_tokens=int(u.get("completion_tokens") or 0))


class OpenAIProtocolBackend(Backend):
    """generate / next_token_logprobs / score over the OpenAI protocol.

    score_method: "echo" (prompt log-probs via `echo`, as vLLM returns them), "grammar" (decoding constrained
    to the continuation's canonical token ids, from the server's tokenizer; llama.cpp reports each forced
    token's pre-sampling log-prob), or "auto" (echo, then grammar).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"generate", "next_token_logprobs", "score"})
    score_method: str = "auto"
    #: the `model` field of request bodies
    request_model: str = ""

    @abstractmethod
    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one request ("/chat/completions" or "/completions") and return the decoded answer."""

    @abstractmethod
    def _post_stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Send one streaming request and yield its decoded chunks."""

    async def stream(self, messages: list[ChatMessage], config: GenerationConfig) -> AsyncIterator[str | Generation]:
        body = {**self._chat_body(messages, config), "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        usage, finish = Usage(), None
        async for chunk in self._post_stream("/chat/completions", body):
            if chunk.get("usage"):
                usage = usage_of(chunk)
            for choice in chunk.get("choices") or []:
                delta = (choice.get("delta") or {}).get("content")
                if delta:
                    parts.append(delta)
                    yield delta
                finish = choice.get("finish_reason") or finish
        yield Generation(text="".join(parts), usage=usage, finish_reason=finish)

    def _chat_body(self, messages: list[ChatMessage], config: GenerationConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.request_model,
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
            usage=usage_of(data),
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
        return LogprobResult(top=top, usage=usage_of(data))

    async def _tokenize(self, text: str) -> list[int] | None:
        """The model's own tokenisation of `text` (no special tokens), or None where the server has none.

        Backends that can score through a grammar (llama.cpp) override this; see `gbnf_tokens` for why.
        """
        return None

    async def score(self, prompt: str, continuations: list[str]) -> ScoreResult:
        out: list[float] = []
        prompt_tokens = completion_tokens = 0
        for cont in continuations:
            value, u = await self._score_one(prompt, cont) if cont else (0.0, Usage())
            out.append(value)
            prompt_tokens += u.prompt_tokens
            completion_tokens += u.completion_tokens
        return ScoreResult(logprobs=out, usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))

    async def _score_one(self, prompt: str, cont: str) -> tuple[float, Usage]:
        if self.score_method in {"auto", "echo"}:
            data = await self._post(
                "/completions",
                {"model": self.request_model, "prompt": prompt + cont, "max_tokens": 1, "echo": True, "logprobs": 1,
                 "temperature": 0.0},
            )
            lp = data["choices"][0].get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if offsets and values and len(offsets) == len(values):
                end = len(prompt + cont)
                total = sum(v for off, v in zip(offsets, values) if len(prompt) <= off < end and v is not None)
                return float(total), usage_of(data)
            if self.score_method == "echo":
                raise CapabilityError("score", self.model_id, BACKENDS_WITH["score"])
        ids = await self._tokenize(cont)
        if not ids:
            raise CapabilityError("score", self.model_id, BACKENDS_WITH["score"])
        data = await self._post(
            "/completions",
            {"model": self.request_model, "prompt": prompt, "max_tokens": len(ids) + 1, "temperature": 0.0,
             "logprobs": 1, "grammar": f"root ::= {gbnf_tokens(ids)}"},
        )
        content = ((data["choices"][0].get("logprobs") or {}).get("content")) or []
        total, exact = sum_token_logprobs(content, ids)
        if not exact:
            raise CapabilityError("score", self.model_id, BACKENDS_WITH["score"])
        return total, usage_of(data)
