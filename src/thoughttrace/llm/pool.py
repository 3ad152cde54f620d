"""Endpoint pools: one model string served by several OpenAI-compatible servers.

`--base-url URL1,URL2` (or THOUGHTTRACE_BASE_URL with commas) or an endpoints YAML file
(`--base-url fleet.yaml`) names the servers. Each request goes to the endpoint with the fewest requests in
flight relative to its weight, never above its own `max_connections`. An endpoint that cannot be reached
(refused, reset, timed out) is taken out of the rotation and probed back in (GET /models) with a growing
interval; the request that failed moves on to another endpoint at once. Which server answered never
enters the cache key: the pool is transport, the model id stays `openai-compatible/NAME`.

Endpoints YAML (format_version 1)::

    format_version: 1
    endpoints:
      - url: http://gpu-1:8000/v1
        max_connections: 64
        weight: 2
        api_key_env: GPU1_KEY     # optional; else the pool's key (THOUGHTTRACE_API_KEY)
      - url: http://gpu-2:8000/v1
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigurationError, ConnectionFailedError

ENDPOINTS_FORMAT_VERSION = 1


@dataclass
class Endpoint:
    """One server of a pool, with its routing state and its own counters."""

    url: str
    max_connections: int = 8
    weight: float = 1.0
    api_key: str | None = None
    in_flight: int = 0
    down_since: float | None = None
    next_probe: float = 0.0
    probe_interval: float = 0.0
    stats: dict[str, float] = field(default_factory=lambda: {
        "requests": 0, "errors": 0, "failovers": 0, "taken_out": 0, "prompt_tokens": 0, "completion_tokens": 0})

    @property
    def up(self) -> bool:
        return self.down_since is None


def parse_endpoints(spec: str | Path | list[Any], *, default_max_connections: int = 8,
                    api_key: str | None = None) -> list[Endpoint]:
    """Endpoints from 'URL', 'URL1,URL2', a list of URLs/dicts, or the path of an endpoints YAML file."""
    if isinstance(spec, Path) or (isinstance(spec, str) and spec.strip().endswith((".yaml", ".yml"))):
        return _from_yaml(Path(spec), default_max_connections, api_key)
    items: list[Any] = [u.strip() for u in spec.split(",") if u.strip()] if isinstance(spec, str) else list(spec)
    if not items:
        raise ConfigurationError("no endpoint URL given; pass --base-url URL[,URL...] or an endpoints YAML file")
    out = [_one(item, default_max_connections, api_key, f"endpoint {i + 1}") for i, item in enumerate(items)]
    urls = [e.url for e in out]
    dup = sorted({u for u in urls if urls.count(u) > 1})
    if dup:
        raise ConfigurationError(f"endpoint URL(s) listed twice: {', '.join(dup)}; give each server once (use "
                                 "weight or max_connections to send it more)")
    return out


def _from_yaml(path: Path, default_max: int, api_key: str | None) -> list[Endpoint]:
    if not path.exists():
        raise ConfigurationError(f"{path}: no such endpoints file; check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML ({exc}); see docs/scale.md for the format") from exc
    if isinstance(data, dict):
        version = data.get("format_version", ENDPOINTS_FORMAT_VERSION)
        if version != ENDPOINTS_FORMAT_VERSION:
            raise ConfigurationError(f"{path}: format_version {version} is not supported (expected "
                                     f"{ENDPOINTS_FORMAT_VERSION})")
        data = data.get("endpoints")
    if not isinstance(data, list) or not data:
        raise ConfigurationError(f"{path}: expected 'endpoints:' with a list of {{url: ..., max_connections: ..., "
                                 "weight: ...}} entries")
    return parse_endpoints(data, default_max_connections=default_max, api_key=api_key)


def _one(item: Any, default_max: int, api_key: str | None, where: str) -> Endpoint:
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, dict) or not isinstance(item.get("url"), str) or not item["url"].strip():
        raise ConfigurationError(f"{where}: needs a 'url' (e.g. http://127.0.0.1:8000/v1)")
    url = item["url"].strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"{where}: '{url}' is not an http(s) URL; write it as http://HOST:PORT/v1")
    unknown = set(item) - {"url", "max_connections", "weight", "api_key_env"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: url, max_connections, "
                                 "weight, api_key_env")
    try:
        max_conn = int(item.get("max_connections", default_max))
        weight = float(item.get("weight", 1.0))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where}: max_connections must be an integer and weight a number") from exc
    if max_conn < 1 or weight <= 0:
        raise ConfigurationError(f"{where}: max_connections must be >= 1 and weight > 0")
    key = api_key
    if item.get("api_key_env"):
        key = os.environ.get(str(item["api_key_env"]))
        if not key:
            raise ConfigurationError(f"{where}: the variable {item['api_key_env']} named by api_key_env is not set")
    return Endpoint(url=url, max_connections=max_conn, weight=weight, api_key=key)


class EndpointPool:
    """Routing state of a pool: least in-flight (weighted) choice, take-out on failure, probe back in.

    Counters are guarded by a thread lock; waiting for a free slot uses one asyncio.Condition per event loop.
    """

    def __init__(self, endpoints: list[Endpoint], *, probe_interval: float = 1.0, max_probe_interval: float = 30.0):
        if not endpoints:
            raise ConfigurationError("an endpoint pool needs at least one endpoint")
        self.endpoints = endpoints
        self.probe_interval = probe_interval
        self.max_probe_interval = max_probe_interval
        self._lock = threading.Lock()
        self._conds: dict[int, asyncio.Condition] = {}

    def __len__(self) -> int:
        return len(self.endpoints)

    @property
    def capacity(self) -> int:
        return sum(e.max_connections for e in self.endpoints)

    def _cond(self) -> asyncio.Condition:
        loop_id = id(asyncio.get_running_loop())
        with self._lock:
            cond = self._conds.get(loop_id)
            if cond is None:
                cond = self._conds[loop_id] = asyncio.Condition()
            return cond

    def _pick(self, exclude: set[str]) -> Endpoint | None:
        """The up endpoint with a free slot and the lowest (in_flight + 1) / weight; ties to the listed order."""
        best: Endpoint | None = None
        best_load = 0.0
        for ep in self.endpoints:
            if not ep.up or ep.url in exclude or ep.in_flight >= ep.max_connections:
                continue
            load = (ep.in_flight + 1) / ep.weight
            if best is None or load < best_load:
                best, best_load = ep, load
        return best

    def due_for_probe(self) -> list[Endpoint]:
        """Taken-out endpoints whose probe time has come; each is handed to one caller only."""
        now = time.monotonic()
        with self._lock:
            due = [e for e in self.endpoints if not e.up and now >= e.next_probe]
            for e in due:
                e.next_probe = now + max(self.probe_interval, e.probe_interval)
            return due

    async def acquire(self, exclude: set[str], probe: Any) -> Endpoint:
        """Reserve a slot on the best endpoint not in `exclude`; wait while every candidate is busy.

        `probe(endpoint) -> bool` is awaited for taken-out endpoints whose probe time has come. Raises
        ConnectionFailedError (transient: the Model backs off and retries) when no candidate is up.
        """
        cond = self._cond()
        while True:
            for ep in self.due_for_probe():
                if ep.url not in exclude and await probe(ep):
                    self.bring_back(ep)
            async with cond:
                with self._lock:
                    ep_or_none = self._pick(exclude)
                    if ep_or_none is not None:
                        ep_or_none.in_flight += 1
                        ep_or_none.stats["requests"] += 1
                        return ep_or_none
                    candidates = [e for e in self.endpoints if e.up and e.url not in exclude]
                if not candidates:
                    down = [e.url for e in self.endpoints if not e.up]
                    raise ConnectionFailedError(
                        f"no endpoint of the pool is available (taken out: {', '.join(down) or 'none'}; "
                        f"already tried: {', '.join(sorted(exclude)) or 'none'}); are the servers up?")
                try:
                    await asyncio.wait_for(cond.wait(), timeout=self.probe_interval)
                except TimeoutError:
                    pass

    async def release(self, ep: Endpoint) -> None:
        with self._lock:
            ep.in_flight -= 1
        cond = self._cond()
        async with cond:
            cond.notify_all()

    def take_out(self, ep: Endpoint) -> None:
        """Stop routing to `ep` until a probe succeeds. A pool of one is never emptied (nothing to fail over to)."""
        if len(self.endpoints) == 1:
            return
        with self._lock:
            if ep.up:
                ep.down_since = time.monotonic()
                ep.probe_interval = self.probe_interval
                ep.stats["taken_out"] += 1
            else:
                ep.probe_interval = min(self.max_probe_interval, max(self.probe_interval, ep.probe_interval * 2))
            ep.next_probe = time.monotonic() + ep.probe_interval

    def bring_back(self, ep: Endpoint) -> None:
        with self._lock:
            ep.down_since = None
            ep.probe_interval = 0.0

    def probe_failed(self, ep: Endpoint) -> None:
        self.take_out(ep)

    def stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {e.url: {**e.stats, "up": e.up, "weight": e.weight, "max_connections": e.max_connections}
                    for e in self.endpoints}
