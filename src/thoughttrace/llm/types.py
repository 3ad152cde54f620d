"""Plain data passed between the model layer and its users."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


class ChatMessage(BaseModel):
    """One chat message as the OpenAI API spells it."""

    model_config = ConfigDict(frozen=True)
    role: Role
    content: str


MessagesLike = list[ChatMessage] | list[dict[str, str]] | str


def as_messages(messages: MessagesLike) -> list[ChatMessage]:
    """Accept a plain prompt string, dicts or ChatMessage objects; return ChatMessages."""
    if isinstance(messages, str):
        return [ChatMessage(role="user", content=messages)]
    return [m if isinstance(m, ChatMessage) else ChatMessage.model_validate(m) for m in messages]


class GenerationConfig(BaseModel):
    """Sampling parameters; every field here changes the output and so enters the cache key."""

    model_config = ConfigDict(frozen=True)
    temperature: float = 0.0
    max_tokens: int = 256
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    sample_index: int = 0
    json_schema: dict[str, Any] | None = None

    def cache_fields(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Generation(BaseModel):
    """A generated text with its token usage; `cached` tells whether the backend was called."""

    text: str
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    cached: bool = False


class TokenLogprob(BaseModel):
    token: str
    logprob: float


class LogprobResult(BaseModel):
    """Top-k log-probabilities of the next token after the prompt (assistant turn start)."""

    top: list[TokenLogprob]
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False

    def prob_of(self, *tokens: str) -> float:
        """Total probability of the listed token strings (whitespace-stripped, case-sensitive)."""
        import math

        wanted = set(tokens)
        return sum(math.exp(t.logprob) for t in self.top if t.token.strip() in wanted)


class ScoreResult(BaseModel):
    """log P(continuation | prompt) for each continuation, summed over its tokens."""

    logprobs: list[float]
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
