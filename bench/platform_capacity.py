"""Capacity at a realistic pace: server CPU-ms per request per route, and participants one core serves.

platform_load.py measures latency under load at a fast pace; this measures what a deployment is sized by.
The model is the fake OpenAI-compatible endpoint of `thoughttrace.llm.fakeserver` (in this process),
answering with server-sent events streamed over a uniform 1-3 s (a real model's time to answer), so the
app pays the real streaming path: httpx in, NDJSON out, the answer stored.

1. Calibration: participants one after another (model latency 0): each request's server CPU is the change
   of the server's CPU clock (/proc schedstat, nanoseconds, every thread) over that request alone.
2. Realistic load: N participants who send a message every 20-60 s (typing their reason meanwhile) and
   react to each answer, for --seconds; server (and PostgreSQL) CPU over the window gives the CPU per
   participant-second, hence the participants one core serves at that pace.

    python bench/platform_capacity.py                         # SQLite, 150 participants, 100 s
    python bench/platform_capacity.py --db postgres -n 300 --out bench/results/capacity_pg_300.json

The study model allows --model-connections answers in flight (default 256, above what the load needs), so
the figure is the app's; with the model's default of 8 the model side saturates first (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from platform_load import (
    DEFAULT_PG,
    Recorder,
    csrf,
    free_port,
    fresh_database,
    pct,
    pg_port,
    postgres_cpu,
    start_server,
    timed,
)

from thoughttrace.llm.fakeserver import FakeOpenAIServer

ID_PREFIX = "/c/"
STUDY = """\
format_version: 1
name: capacity
tasks_per_participant: 1
timer_minutes: 60
models:
  - {{key: fake, spec: "openai-compatible/fake", name: Fake, provider: bench,
     options: {{base_url: "{url}", max_connections: {connections}}}}}
"""
ANSWER = ("Here is a plan with a few concrete steps. " * 15).strip()  # ~600 characters, like a short real answer


class StreamingFake(FakeOpenAIServer):
    """The package's fake endpoint, answering `stream: true` with SSE chunks spread over a uniform latency."""

    def __init__(self) -> None:
        super().__init__("capacity")
        self.latency = (0.0, 0.0)
        self.rng = random.Random(7)

    async def reply(self, writer: asyncio.StreamWriter, method: str, path: str, raw: bytes) -> None:
        if method == "POST" and json.loads(raw or b"{}").get("stream"):
            await self.stream(writer)
        else:
            await super().reply(writer, method, path, raw)

    async def stream(self, writer: asyncio.StreamWriter) -> None:
        self.completions += 1
        total = self.rng.uniform(*self.latency)
        pieces = [ANSWER[i:i + 40] for i in range(0, len(ANSWER), 40)]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        await asyncio.sleep(total * 0.3)  # time to the first token
        for i, piece in enumerate(pieces):
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self._chunk(writer, f"data: {json.dumps(chunk)}\n\n")
            await writer.drain()
            if i < len(pieces) - 1:
                await asyncio.sleep(total * 0.7 / len(pieces))
        done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 150}}
        self._chunk(writer, f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, text: str) -> None:
        data = text.encode()
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def start_fake() -> tuple[StreamingFake, str]:
    fake = StreamingFake()
    ready: list[str] = []
    started = threading.Event()

    async def main() -> None:
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0, backlog=1024)
        ready.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
        started.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    started.wait(10)
    return fake, ready[0]


def server_cpu_ns(pid: int) -> int:
    """CPU time of the server process tree in ns: every thread's /proc schedstat (exact, unlike clock ticks)."""
    total = 0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in procs:
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


class CpuRecorder(Recorder):
    """Also attributes the server's CPU to each request's route (valid only when requests run one at a time)."""

    def __init__(self, pid: int | None = None) -> None:
        super().__init__()
        self.pid = pid
        self.cpu_ms: dict[str, list[float]] = defaultdict(list)


async def ctimed(rec: CpuRecorder, c: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    if rec.pid is None:
        return await timed(rec, c, method, url, **kw)
    before = server_cpu_ns(rec.pid)
    n_before = {r: len(v) for r, v in rec.latency.items()}
    r = await timed(rec, c, method, url, **kw)
    spent = (server_cpu_ns(rec.pid) - before) / 1e6
    route = next(k for k, v in rec.latency.items() if len(v) != n_before.get(k, 0))
    rec.cpu_ms[route].append(spent)
    return r


async def cfollow(rec: CpuRecorder, c: aiohttp.ClientSession, r: Any) -> Any:
    while r.status_code in (302, 303):
        r = await ctimed(rec, c, "GET", r.headers["location"])
    return r


async def participant(i: int, base: str, rec: CpuRecorder, connector: aiohttp.BaseConnector, think: tuple[float, float],
                      until: float, rng: random.Random, tag: str, turns: int | None = None) -> int:
    """Entry, consent, quiz, one task; then turns at the given pace until `until` (or `turns` turns)."""
    async with aiohttp.ClientSession(base_url=base, connector=connector, connector_owner=False,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=120)) as c:
        r = await cfollow(rec, c, await ctimed(rec, c, "GET", f"/start?PROLIFIC_PID={tag}{i}&STUDY_ID=c&SESSION_ID=s{i}"))
        r = await cfollow(rec, c, await ctimed(rec, c, "POST", "/consent", data={"csrf_token": csrf(r), "agree": "yes"}))
        r = await cfollow(rec, c, await ctimed(rec, c, "POST", "/tutorial", data={"csrf_token": csrf(r), "q0": "1",
                                                                                "q1": "1"}))
        r = await cfollow(rec, c, await ctimed(rec, c, "POST", "/task", data={"csrf_token": csrf(r), "task": "a task"}))
        cid = str(r.url).split(ID_PREFIX)[-1]
        h = {"X-CSRF-Token": csrf(r)}
        done = 0
        while (turns is None and time.monotonic() < until) or (turns is not None and done < turns):
            if think[1] > 0:
                left = until - time.monotonic() if turns is None else think[1]
                await asyncio.sleep(min(rng.uniform(*think), max(0.0, left)))
                if turns is None and time.monotonic() >= until:
                    break
            m = await ctimed(rec, c, "POST", f"/api/c/{cid}/messages", headers=h, json={
                "content": f"message {done} from {i}: " + "words " * 30, "reason": "because I want to know " * 3,
                "idempotency_key": secrets.token_hex(12)})
            if m.status_code != 201:
                continue
            g = await ctimed(rec, c, "POST", f"/api/c/{cid}/generate", headers=h)
            events = [json.loads(x) for x in g.text.splitlines() if x.strip()]
            if not events or events[-1].get("type") != "done":
                rec.errors.append(f"generate gave no answer: {g.status_code} {g.text[:100]}")
                continue
            await ctimed(rec, c, "POST", f"/api/c/{cid}/messages/{events[-1]['message_id']}/reaction", headers=h,
                         json={"content": "that helps, thanks", "idempotency_key": secrets.token_hex(12)})
            done += 1
        return done


async def calibrate(base: str, pid: int, n: int, tag: str) -> CpuRecorder:
    rec = CpuRecorder(pid)
    connector = aiohttp.TCPConnector(limit=4)
    for i in range(n):
        await participant(i, base, rec, connector, (0, 0), 0, random.Random(i), tag, turns=3)
    await connector.close()
    return rec


async def load(base: str, n: int, seconds: float, ramp: float, think: tuple[float, float], pid: int,
               pg: int | None) -> tuple[Recorder, int, tuple[float, float, float]]:
    """The realistic window; returns the recorder, the turns, and (server CPU s, PostgreSQL CPU s, wall s) over
    exactly the window (requests still running at its end are cut there)."""
    rec = CpuRecorder(None)
    window: list[float] = []

    async def meter() -> None:
        cpu0, db0, t0 = server_cpu_ns(pid), postgres_cpu(pg) if pg else 0.0, time.monotonic()
        await asyncio.sleep(seconds)
        window.extend([(server_cpu_ns(pid) - cpu0) / 1e9, (postgres_cpu(pg) - db0) if pg else 0.0,
                       time.monotonic() - t0])

    metering = asyncio.create_task(meter())
    connector = aiohttp.TCPConnector(limit=n + 10, keepalive_timeout=30.0)
    until = time.monotonic() + seconds

    async def one(i: int) -> int:
        await asyncio.sleep(ramp * i / max(n, 1))
        try:
            return await participant(i, base, rec, connector, think, until, random.Random(i), "load")
        except Exception as exc:  # reported, not a crash of the bench
            rec.errors.append(f"participant {i}: {type(exc).__name__}: {exc}")
            return 0

    turns = await asyncio.gather(*(one(i) for i in range(n)))
    await metering
    await connector.close()
    return rec, sum(turns), (window[0], window[1], window[2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", "-n", type=int, default=150)
    ap.add_argument("--seconds", type=float, default=100.0, help="length of the realistic-pace window")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pg-url", default=os.environ.get("THOUGHTTRACE_TEST_PG_URL", DEFAULT_PG))
    ap.add_argument("--calibration", type=int, default=6, help="participants in the one-at-a-time calibration")
    ap.add_argument("--model-connections", type=int, default=256, help="the study model's max_connections "
                    "(answers in flight the app allows the endpoint)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON figures to this file")
    args = ap.parse_args()
    load_at_start = os.getloadavg()[0]
    fake, url = start_fake()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        study = tmp / "study.yaml"
        study.write_text(STUDY.format(url=url, connections=args.model_connections), encoding="utf-8")
        db_url, drop = fresh_database(args.db, args.pg_url, tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(db_url, study, port, 1)
        try:
            asyncio.run(calibrate(base, proc.pid, 1, "warm"))  # warm-up (imports, first queries), not counted
            cal = asyncio.run(calibrate(base, proc.pid, args.calibration, "cal"))
            fake.latency = (1.0, 3.0)
            rec, turns, (server_s, db_s, wall) = asyncio.run(load(
                base, args.participants, args.seconds, min(20.0, args.seconds / 4), (20.0, 60.0), proc.pid,
                pg_port(args.pg_url) if args.db == "postgres" else None))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
            drop()

    print(f"calibration: {args.calibration} participants one at a time (1 task x 3 turns), server CPU-ms per request")
    print(f"{'route':44s} {'n':>5s} {'CPU ms p50':>11s} {'mean':>8s}")
    per_route = {}
    for route in sorted(cal.cpu_ms):
        xs = cal.cpu_ms[route]
        per_route[route] = statistics.mean(xs)
        print(f"{route:44s} {len(xs):5d} {statistics.median(xs):11.2f} {statistics.mean(xs):8.2f}")
    turn_ms = sum(v for r, v in per_route.items() if r.startswith("POST /api/"))
    print(f"one turn (message + generate + reaction): {turn_ms:.2f} CPU-ms; at one turn per 40 s (20-60 s) "
          f"one core serves {40_000 / turn_ms:,.0f} chatting participants (calibration estimate)")
    nm = rec.non_model()
    gen = [x for r, xs in rec.latency.items() if r.endswith("/generate") for x in xs]
    util = server_s / wall
    per_core = args.participants / util if util > 0 else float("inf")
    print(f"realistic pace: {args.participants} participants, {wall:.0f} s, {turns} turns, "
          f"{sum(len(v) for v in rec.latency.values())} requests, errors {len(rec.errors)}")
    print(f"  server CPU {server_s:.1f} s = {util:.1%} of one core"
          + (f"; PostgreSQL {db_s:.1f} s = {db_s / wall:.1%} of one core" if args.db == "postgres" else ""))
    print(f"  non-model routes p50 {pct(nm, 50):.1f} ms p95 {pct(nm, 95):.1f} ms; generate (1-3 s model) "
          f"p50 {pct(gen, 50):.0f} ms p95 {pct(gen, 95):.0f} ms")
    print(f"  => one app core serves ~{per_core:,.0f} participants at this pace (arrival and task pages included)")
    for e in rec.errors[:5]:
        print("  ", e)
    doc = {"format_version": 1, "bench": "platform_capacity", "db": args.db, "participants": args.participants,
           "wall_s": wall, "turns": turns, "requests": sum(len(v) for v in rec.latency.values()),
           "cpu_ms_per_request": per_route, "turn_cpu_ms": turn_ms, "server_cpu_share_of_core": util,
           "postgres_cpu_share_of_core": db_s / wall, "participants_per_core": per_core,
           "non_model_p50_ms": pct(nm, 50), "non_model_p95_ms": pct(nm, 95), "generate_p50_ms": pct(gen, 50),
           "generate_p95_ms": pct(gen, 95), "errors": len(rec.errors), "model_connections": args.model_connections,
           "machine_cores": psutil.cpu_count(), "load_avg_1m_at_start": round(load_at_start, 2),
           "machine_shared": True}
    if args.json:
        print(json.dumps(doc))
    if args.out:
        args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    sys.exit(1 if rec.errors else 0)


if __name__ == "__main__":
    main()
