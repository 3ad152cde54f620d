"""The model layer: every model call in the package goes through `get_model(spec)`."""

from .base import Backend
from .cache import ResponseCache, default_cache_path
from .errors import (
    AuthenticationError,
    BadRequestError,
    CacheMissError,
    CapabilityError,
    ConfigurationError,
    ConnectionFailedError,
    ContextLengthError,
    LLMError,
    ParseError,
    RateLimitError,
    RequestTimeoutError,
    RetriesExhaustedError,
    ServerError,
    TransientError,
)
from .model import Model
from .registry import SPEC_HELP, get_model, make_backend
from .types import ChatMessage, Generation, GenerationConfig, LogprobResult, ScoreResult, TokenLogprob, Usage
from .usage import UsageReport, UsageTracker

__all__ = [
    "AuthenticationError", "BadRequestError", "Backend", "CacheMissError", "CapabilityError", "ChatMessage",
    "ConfigurationError", "ConnectionFailedError", "ContextLengthError", "Generation", "GenerationConfig",
    "LLMError", "LogprobResult", "Model", "ParseError", "RateLimitError", "RequestTimeoutError",
    "ResponseCache", "RetriesExhaustedError", "SPEC_HELP", "ScoreResult", "ServerError", "TokenLogprob",
    "TransientError", "Usage", "UsageReport", "UsageTracker", "default_cache_path", "get_model", "make_backend",
]
