"""Usage accounting per run: calls, cache hits, tokens, wall time and cost where prices are known."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import BaseModel

from .types import Usage

ENDPOINT_FIELDS = ("requests", "errors", "failovers", "taken_out", "prompt_tokens", "completion_tokens")


class UsageReport(BaseModel):
    """A snapshot of a run's usage; written into every output that called models."""

    format_version: int = 1
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    retries: int = 0
    wall_seconds: float = 0.0
    cost_usd: float | None = None
    by_model: dict[str, dict[str, float]] = {}
    #: per server of an endpoint pool (openai-compatible backends): requests, errors, failovers, tokens
    by_endpoint: dict[str, dict[str, float]] = {}

    def summary_line(self) -> str:
        cost = f", cost ${self.cost_usd:.4f}" if self.cost_usd is not None else ""
        return (
            f"usage: {self.calls} model calls, {self.cache_hits} cache hits, "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, "
            f"{self.wall_seconds:.1f} s{cost}"
        )


def load_price_table(path: str | None = None) -> dict[str, dict[str, float]]:
    """Prices in USD per million tokens, `{model_id: {input: x, output: y}}`.

    Read from THOUGHTTRACE_PRICES (a YAML file) so that prices are configuration, not code.
    """
    path = path or os.environ.get("THOUGHTTRACE_PRICES")
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return {str(k): {"input": float(v["input"]), "output": float(v["output"])} for k, v in data.items()}


class UsageTracker:
    """Thread-safe counters shared by every Model of a run."""

    def __init__(self, prices: dict[str, dict[str, float]] | None = None) -> None:
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._prices = prices if prices is not None else load_price_table()
        self._by_model: dict[str, dict[str, float]] = {}
        self._by_endpoint: dict[str, dict[str, float]] = {}
        self._listeners: list[Callable[[str, dict[str, float]], None]] = []
        self._endpoint_listeners: list[Callable[[str, dict[str, float]], None]] = []

    def add_listener(self, fn: Callable[[str, dict[str, float]], None]) -> None:
        """Call `fn(model_id, increments)` after every recorded call, hit, error or retry.

        Why: a run's ledger appends each event as it happens, so a killed run's calls are still counted.
        """
        with self._lock:
            self._listeners.append(fn)

    def add_endpoint_listener(self, fn: Callable[[str, dict[str, float]], None]) -> None:
        """Call `fn(url, increments)` after every change of an endpoint's counters (a request sent, an error ...).

        Why: a request is counted when it is SENT; a worker killed with requests in flight has no call for
        them, but the server saw (and answered) them: the batch ledger writes these so its total matches.
        """
        with self._lock:
            self._endpoint_listeners.append(fn)

    def _notify(self, model_id: str, increments: dict[str, float]) -> None:
        for fn in list(self._listeners):
            fn(model_id, increments)

    def record_endpoint(self, url: str, **increments: float) -> None:
        """Add to one endpoint's counters (requests, errors, failovers, taken_out, prompt/completion tokens)."""
        with self._lock:
            row = self._by_endpoint.setdefault(url, dict.fromkeys(ENDPOINT_FIELDS, 0))
            for k, v in increments.items():
                row[k] = row.get(k, 0) + v
            listeners = list(self._endpoint_listeners) if self._endpoint_listeners else None
        if listeners:
            for fn in listeners:
                fn(url, increments)

    def _row(self, model_id: str) -> dict[str, float]:
        return self._by_model.setdefault(
            model_id,
            {"calls": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "errors": 0, "retries": 0},
        )

    def record_call(self, model_id: str, usage: Usage) -> None:
        with self._lock:
            row = self._row(model_id)
            row["calls"] += 1
            row["prompt_tokens"] += usage.prompt_tokens
            row["completion_tokens"] += usage.completion_tokens
        self._notify(model_id, {"calls": 1, "prompt_tokens": usage.prompt_tokens,
                                "completion_tokens": usage.completion_tokens})

    def record_hit(self, model_id: str) -> None:
        with self._lock:
            self._row(model_id)["cache_hits"] += 1
        self._notify(model_id, {"cache_hits": 1})

    def record_error(self, model_id: str) -> None:
        with self._lock:
            self._row(model_id)["errors"] += 1
        self._notify(model_id, {"errors": 1})

    def record_retry(self, model_id: str) -> None:
        with self._lock:
            self._row(model_id)["retries"] += 1
        self._notify(model_id, {"retries": 1})

    def reset(self) -> None:
        with self._lock:
            self._by_model.clear()
            self._by_endpoint.clear()
            self._started = time.perf_counter()

    def report(self) -> UsageReport:
        with self._lock:
            rows = {k: dict(v) for k, v in self._by_model.items()}
            endpoints = {k: dict(v) for k, v in self._by_endpoint.items()}
        total: dict[str, Any] = {
            key: int(sum(r[key] for r in rows.values()))
            for key in ("calls", "cache_hits", "prompt_tokens", "completion_tokens", "errors", "retries")
        }
        cost: float | None = None
        priced = [m for m in rows if m in self._prices]
        if priced:
            cost = sum(
                rows[m]["prompt_tokens"] * self._prices[m]["input"] / 1e6
                + rows[m]["completion_tokens"] * self._prices[m]["output"] / 1e6
                for m in priced
            )
        return UsageReport(
            **total, wall_seconds=time.perf_counter() - self._started, cost_usd=cost, by_model=rows,
            by_endpoint=endpoints,
        )
