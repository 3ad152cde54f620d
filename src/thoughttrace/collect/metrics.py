"""Prometheus metrics of the platform: requests and latency per route, model calls per model, participants.

With several uvicorn workers each process counts its own requests; prometheus-client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by `thoughttrace serve --workers N` before the workers start) keeps every
worker's counters in files of that folder, and `/metrics`, whichever worker answers it, sums them. The
participants-by-stage gauge is read from the database at scrape time (one query), so it is the same
whichever worker answers and needs no per-process state.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from thoughttrace.llm import Model

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

HTTP_REQUESTS = Counter("thoughttrace_http_requests", "HTTP requests answered, per route template and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("thoughttrace_http_request_duration_seconds", "time to the end of the response, per route",
                         ["method", "route"], buckets=LATENCY_BUCKETS)
MODEL_CALLS = Counter("thoughttrace_model_calls", "model calls started, per study model key", ["model"])
MODEL_ERRORS = Counter("thoughttrace_model_errors", "model calls that failed (error or timeout)", ["model"])
MODEL_LATENCY = Histogram("thoughttrace_model_call_duration_seconds", "model call time until the last piece of text",
                          ["model"], buckets=LATENCY_BUCKETS)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


class MeteredModel:
    """A study model whose `astream` counts calls, errors and latency (everything else is the model's)."""

    def __init__(self, key: str, model: Model) -> None:
        self._key = key
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    async def astream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[str, None]:
        MODEL_CALLS.labels(self._key).inc()
        t0 = time.perf_counter()
        ok = False
        try:
            async for piece in self._model.astream(*args, **kwargs):
                yield piece
            ok = True
        finally:
            MODEL_LATENCY.labels(self._key).observe(time.perf_counter() - t0)
            if not ok:
                MODEL_ERRORS.labels(self._key).inc()


def metered(models: Mapping[str, Model]) -> dict[str, Model]:
    """Every model of the pool wrapped in `MeteredModel` (typed as Model: the routes only call `astream`)."""
    return {key: cast(Model, MeteredModel(key, m)) for key, m in models.items()}


class ParticipantsByStage(Collector):
    """`thoughttrace_participants{stage=...}` from one GROUP BY at scrape time."""

    def __init__(self, counts: Mapping[str, int]) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Metric]:
        g = GaugeMetricFamily("thoughttrace_participants", "participants by study stage", labels=["stage"])
        for stage, n in sorted(self.counts.items()):
            g.add_metric([stage], n)
        yield g


def render(participants_by_stage: Mapping[str, int]) -> bytes:
    """The exposition text: this process's (or, in multiprocess mode, every worker's) metrics plus the gauge."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        base = generate_latest(registry)
    else:
        base = generate_latest(REGISTRY)
    own = CollectorRegistry()
    own.register(ParticipantsByStage(participants_by_stage))
    return base + generate_latest(own)
