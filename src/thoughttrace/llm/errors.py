"""Typed errors of the model layer.

Callers branch on the type, not on message text: only `TransientError` subclasses are retried.
"""

from __future__ import annotations


class LLMError(Exception):
    """Base class of every model-layer error."""


class ConfigurationError(LLMError):
    """A model string, option or environment variable is wrong; the message says how to fix it."""


class MissingDependencyError(ConfigurationError):
    """An optional package is not installed; the message carries the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"the optional package '{package}' is not installed; install it with "
            f"`pip install 'thoughttrace[{extra}]'`"
        )


class CapabilityError(LLMError):
    """The backend lacks a capability (next_token_logprobs, score) a method needs."""

    def __init__(self, capability: str, model_id: str, backends: list[str]) -> None:
        self.capability = capability
        super().__init__(
            f"model '{model_id}' does not support '{capability}'; backends that do: "
            f"{', '.join(backends)}. Pick one of them or a method with a fallback."
        )


class TransientError(LLMError):
    """Worth retrying: connection reset, rate limit, server error, timeout."""


class ConnectionFailedError(TransientError):
    """The endpoint could not be reached (refused, reset, DNS)."""


class RateLimitError(TransientError):
    """HTTP 429."""


class ServerError(TransientError):
    """HTTP 5xx."""


class RequestTimeoutError(TransientError):
    """The request took longer than the configured timeout."""


class AuthenticationError(LLMError):
    """HTTP 401/403: the API key is missing or wrong."""


class BadRequestError(LLMError):
    """HTTP 400/404/422: the request itself is wrong; retrying cannot help."""


class ContextLengthError(BadRequestError):
    """The prompt does not fit the model's context window."""


class CacheMissError(LLMError):
    """Offline replay asked for a call the cache does not hold."""


class RetriesExhaustedError(LLMError):
    """A transient error persisted through every retry."""

    def __init__(self, attempts: int, last: Exception) -> None:
        self.attempts = attempts
        self.last = last
        super().__init__(f"gave up after {attempts} attempts: {type(last).__name__}: {last}")


class ParseError(LLMError):
    """A model output could not be parsed into the expected structure; keeps the raw text."""

    def __init__(self, message: str, raw: str) -> None:
        self.raw = raw
        super().__init__(f"{message} (raw output: {raw[:200]!r})")
