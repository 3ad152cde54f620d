"""Model backends, imported lazily by `thoughttrace.llm.registry`."""
