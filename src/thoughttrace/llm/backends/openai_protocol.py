"""The OpenAI chat/completions protocol, shared by every backend that speaks it.

`openai-compatible` sends it over HTTP; `local` hands the same dicts to llama.cpp in-process. Subclasses
implement `_post(path, body)` only.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ..base import BACKENDS_WITH, Backend
from ..errors import BadRequestError, CapabilityError, ContextLengthError, LLMError
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


class ScoreUnavailableError(CapabilityError):
    """`score` cannot be computed on this server: says why, which fallback exists, and how to allow it."""

    def __init__(self, model_id: str, why: str, fallback: str) -> None:
        self.capability = "score"
        LLMError.__init__(
            self, f"model '{model_id}' cannot 'score' here: {why}. Fallback: {fallback}. Backends with exact "
                  f"scores: {', '.join(BACKENDS_WITH['score'])}.")


#: the fallback `score` has on the OpenAI protocol, named in every error about it
GRAMMAR_FALLBACK = ("score_method='grammar' (decoding forced to the continuation's tokens through a GBNF grammar; "
                    "needs a llama.cpp server, which has /tokenize), tried automatically with score_method='auto'")


def echo_sum(data: dict[str, Any], prompt: str, cont: str) -> float | None:
    """log P(cont | prompt) from an `echo` answer, or None when the answer holds no prompt log-probs.

    A server that ignores `echo` returns the log-probs of the generated token only: summing the
    continuation's span of those gives 0.0, a silent wrong score. So the answer must hold tokens that start
    inside the prompt (the echo) and at least one token inside the continuation's span.
    """
    choices = data.get("choices") or [{}]
    lp = choices[0].get("logprobs") or {}
    offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
    if not offsets or not values or len(offsets) != len(values):
        return None
    start, end = len(prompt), len(prompt + cont)
    if prompt and not any(off < start for off in offsets):
        return None
    span = [v for off, v in zip(offsets, values) if start <= off < end]
    if not span or any(v is None for v in span):
        return None
    return float(sum(span))


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
        why = ""
        if self.score_method in {"auto", "echo"}:
            try:
                data = await self._post(
                    "/completions",
                    {"model": self.request_model, "prompt": prompt + cont, "max_tokens": 1, "echo": True,
                     "logprobs": 1, "temperature": 0.0},
                )
            except ContextLengthError:
                raise
            except BadRequestError as exc:  # no /v1/completions (404), or echo refused (400)
                why = f"the server has no prompt log-probs on /v1/completions ({exc})"
            else:
                value = echo_sum(data, prompt, cont)
                if value is not None:
                    return value, usage_of(data)
                why = ("the server ignored `echo`: its /v1/completions answer has no log-probs for the prompt's "
                       "tokens (a score of 0.0 would be wrong)")
            if self.score_method == "echo":
                raise ScoreUnavailableError(self.model_id, why, GRAMMAR_FALLBACK + "; this model was built with "
                                            "score_method='echo', which does not allow it")
        ids = await self._tokenize(cont)
        if not ids:
            raise ScoreUnavailableError(
                self.model_id, (why + "; and " if why else "") + "the server has no /tokenize for the grammar "
                "fallback", GRAMMAR_FALLBACK + " (not available on this server)")
        data = await self._post(
            "/completions",
            {"model": self.request_model, "prompt": prompt, "max_tokens": len(ids) + 1, "temperature": 0.0,
             "logprobs": 1, "grammar": f"root ::= {gbnf_tokens(ids)}"},
        )
        content = ((data["choices"][0].get("logprobs") or {}).get("content")) or []
        total, exact = sum_token_logprobs(content, ids)
        if not exact:
            raise ScoreUnavailableError(
                self.model_id, (why + "; and " if why else "") + "the server did not follow the grammar (the "
                "returned tokens are not the continuation's)", GRAMMAR_FALLBACK + " (tried; it failed)")
        return total, usage_of(data)
