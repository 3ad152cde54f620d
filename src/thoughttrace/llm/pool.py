"""Endpoint pools: one model string served by several OpenAI-compatible servers.

`--base-url URL1,URL2` (or THOUGHTTRACE_BASE_URL with commas) or an endpoints YAML file
(`--base-url fleet.yaml`) names the servers. Routing is least-in-flight with a weighted rotation: an endpoint
that holds a whole request or more above its weighted share of the requests in flight is passed over (a slow
or stuck server collects requests in flight, so it gets fewer new ones); among the others a smooth weighted
round robin picks, started at a random offset in each process (every Ray worker starts with the same state;
without the offset all their first requests would go to the first endpoint listed). So equal servers get
equal shares and weights hold at one request in flight as at 64, never above an endpoint's
`max_connections`. An endpoint that cannot be reached (refused, reset, timed out) is taken out of the
rotation and probed back in (GET /models) with a growing interval; the request that failed moves on to
another endpoint at once. Which server answered never enters the cache key: the pool is transport, the model
id stays `openai-compatible/NAME`.

Endpoints YAML (format_version 1)::

    format_version: 1
    endpoints:
      - url: http://gpu-1:8000/v1
        max_connections: 64
        weight: 2
        api_key_env: GPU1_KEY     # optional; else the pool's key (THOUGHTTRACE_API_KEY)
        timeout: 60               # optional; seconds without an answer before the server is taken out
      - url: http://gpu-2:8000/v1
"""

from __future__ import annotations

import asyncio
import math
import os
import random
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
    #: seconds to wait for an answer (None: the backend's --timeout)
    timeout: float | None = None
    #: the variable api_key_env named (shipped to Ray workers by name, never by value)
    api_key_env: str | None = None
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
    unknown = set(item) - set(_FIELDS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {', '.join(_FIELDS)}")
    try:
        max_conn = int(item.get("max_connections", default_max))
        weight = float(item.get("weight", 1.0))
        timeout = None if item.get("timeout") is None else float(item["timeout"])
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{where}: max_connections must be an integer, weight and timeout numbers "
                                 "(seconds)") from exc
    if max_conn < 1 or not math.isfinite(weight) or weight <= 0:
        raise ConfigurationError(f"{where}: max_connections must be >= 1 and weight > 0")
    if timeout is not None and (not math.isfinite(timeout) or timeout <= 0):
        raise ConfigurationError(f"{where}: timeout must be a number of seconds > 0")
    key = api_key
    if item.get("api_key_env"):
        key = os.environ.get(str(item["api_key_env"]))
        if not key:
            raise ConfigurationError(f"{where}: the variable {item['api_key_env']} named by api_key_env is not set")
    return Endpoint(url=url, max_connections=max_conn, weight=weight, api_key=key, timeout=timeout,
                    api_key_env=str(item["api_key_env"]) if item.get("api_key_env") else None)


_FIELDS = ("url", "max_connections", "weight", "api_key_env", "timeout")


def endpoint_spec(ep: Endpoint, *, max_connections: int | None = None) -> dict[str, Any]:
    """`ep` as an endpoints-list entry (what `parse_endpoints` reads back): no key, only the variable naming it."""
    out: dict[str, Any] = {"url": ep.url, "max_connections": max_connections or ep.max_connections,
                           "weight": ep.weight}
    if ep.timeout is not None:
        out["timeout"] = ep.timeout
    if ep.api_key_env:
        out["api_key_env"] = ep.api_key_env
    return out


def split_limits(spec: str | Path | list[Any], workers: int, *, default_max_connections: int = 8,
                 base_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The endpoints of `spec`, resolved here (a relative YAML path against `base_dir`), each worker's share.

    `max_connections` is the SERVER's limit: W processes that each kept it would send W times what the
    operator allowed. Each of `workers` processes gets `max_connections // workers`; an endpoint whose limit is
    below the number of workers cannot be shared that way and is refused with the fix. The result is a plain
    list (picklable), so a Ray worker never opens a path that only exists where the driver runs.
    """
    if workers < 1:
        raise ConfigurationError("the number of workers must be at least 1")
    if isinstance(spec, (str, Path)) and str(spec).strip().endswith((".yaml", ".yml")):
        path = Path(str(spec).strip()).expanduser()
        if not path.is_absolute():
            path = Path(base_dir or os.getcwd()) / path
        spec = path.resolve()
    endpoints = parse_endpoints(spec, default_max_connections=default_max_connections)
    small = [e for e in endpoints if e.max_connections < workers]
    if small:
        raise ConfigurationError(
            f"{small[0].url} allows max_connections={small[0].max_connections} requests in flight, fewer than the "
            f"{workers} workers that would share it (each needs one); use --workers {small[0].max_connections} or "
            "fewer, or raise that endpoint's max_connections in the fleet YAML")
    return [endpoint_spec(e, max_connections=e.max_connections // workers) for e in endpoints]


class EndpointPool:
    """Routing state of a pool: least in-flight (weighted) choice, take-out on failure, probe back in.

    Counters are guarded by a thread lock; waiting for a free slot uses one asyncio.Condition per event loop.
    `seed` fixes the rotation's start (tests); by default each process starts at a random point.
    """

    #: how far (in requests) above its weighted share of the requests in flight an endpoint may go
    SLACK = 1.0

    def __init__(self, endpoints: list[Endpoint], *, probe_interval: float = 1.0, max_probe_interval: float = 30.0,
                 seed: int | None = None):
        if not endpoints:
            raise ConfigurationError("an endpoint pool needs at least one endpoint")
        self.endpoints = endpoints
        self.probe_interval = probe_interval
        self.max_probe_interval = max_probe_interval
        self._lock = threading.Lock()
        self._conds: dict[int, asyncio.Condition] = {}
        rng = random.Random(seed)  # seed None: from os.urandom, so each Ray worker starts elsewhere
        #: smooth weighted round robin state (nginx's): the highest `current` is picked, then lowered by the total
        self._current: dict[str, float] = {e.url: rng.random() * e.weight for e in endpoints}

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
        """The next endpoint for one request, or None when every candidate is full (call under the lock).

        Candidates: up, not in `exclude`, below max_connections. Of those, an endpoint already holding SLACK
        requests or more above its weighted share of the requests in flight (this one counted) is passed over
        while another is not; the rest take turns by smooth weighted round robin. Why both: the rotation alone
        gives exact weights at any concurrency but keeps feeding a slow server; least-in-flight alone piles
        onto one endpoint at low concurrency (every tie to the same one) and bends weights at 2 or 3 in flight.
        """
        live = [e for e in self.endpoints if e.up and e.url not in exclude]
        free = [e for e in live if e.in_flight < e.max_connections]
        if not free:
            return None
        total_w = sum(e.weight for e in live)
        flying = sum(e.in_flight for e in live) + 1
        excess = {e.url: e.in_flight - flying * e.weight / total_w for e in free}
        cands = [e for e in free if excess[e.url] < self.SLACK]
        if not cands:
            low = min(excess.values())
            cands = [e for e in free if excess[e.url] <= low + 1e-9]
        step = sum(e.weight for e in cands)
        for e in cands:
            self._current[e.url] = self._current.get(e.url, 0.0) + e.weight
        best = max(cands, key=lambda e: self._current[e.url])
        self._current[best.url] -= step
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
