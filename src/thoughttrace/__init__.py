"""ThoughtTrace: capture, model and infer what people think while they talk to LLMs."""

__version__ = "0.1.0"
