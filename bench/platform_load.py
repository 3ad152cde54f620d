"""Load test of the study platform: N simulated participants doing full journeys over HTTP.

Starts `thoughttrace serve` in a subprocess (uvicorn, one worker) on SQLite or PostgreSQL with a fast
scripted model, then runs N participants concurrently from ONE process with aiohttp (one shared
connection pool, one cookie jar per participant; aiohttp costs a fraction of httpx's CPU per request,
and the load generator shares the cores with the server it measures): consent, quiz, T tasks of K
turns (message + reason, answer, reaction), task summary, survey. Each participant pauses a random
"think time" between steps (default 5-15 s; in the release a participant sent about one message a
minute while writing a reason for it, so this runs a journey about five times faster than people do;
`--think 1 3` is a stress test well past any real study's pace; `--pace stress` removes think time and
the arrival ramp altogether: every participant clicks through as fast as the server answers). Reports p50/p95/p99 latency of the non-model routes (every request but
`/generate`, which waits on the model), per route, the errors, and the reasons + reactions sent
against those found in the admin export (they must be equal). The baseline is the same journey run by
one participant alone, in the same process, before the load: ratios are loaded / alone. It also prints
the CPU each side spent per request (the server's process tree, this process, and the whole machine's
busy share), which is what decides the latency when nobody thinks between clicks.

    python bench/platform_load.py                      # 200 participants, SQLite
    python bench/platform_load.py --db postgres        # PostgreSQL (THOUGHTTRACE_TEST_PG_URL or --pg-url)
    python bench/platform_load.py --db postgres --workers 2 --pace stress --port 8765
Targets: p95 of non-model routes < 100 ms at the default pace, < 250 ms at stress pace; zero errors;
every note sent is in the export.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

CSRF_RE = re.compile(r'(?:name="csrf_token" value|data-csrf)="([^"]+)"')
ID_RE = re.compile(r"/c/([A-Za-z0-9_\-]+)")
ADMIN_TOKEN = "bench-admin-token-0123456789"
ENV = {"THOUGHTTRACE_MODE": "test", "THOUGHTTRACE_ADMIN_TOKEN": ADMIN_TOKEN,
       "THOUGHTTRACE_SECRET_KEY": "bench-secret-key-0123456789abcdef"}
STUDY = """\
format_version: 1
name: bench
tasks_per_participant: {tasks}
timer_minutes: 60
models:
  - {{key: fast-a, spec: scripted, name: Fast A, provider: bench, options: {{default: "A **fast** scripted answer."}}}}
  - {{key: fast-b, spec: scripted, name: Fast B, provider: bench, options: {{default: "Another scripted answer."}}}}
"""
DEFAULT_PG = "postgresql+psycopg://thoughttrace:thoughttrace@127.0.0.1:5432/thoughttrace_test"


def route_of(method: str, path: str) -> str:
    path = path.split("?")[0]
    path = re.sub(r"/messages/[A-Za-z0-9_\-]+/reaction", "/messages/{mid}/reaction", path)
    path = re.sub(r"/c/[A-Za-z0-9_\-]+", "/c/{cid}", path)
    return f"{method} {path}"


class Recorder:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.thoughts_sent = 0

    def non_model(self) -> list[float]:
        return [x for r, xs in self.latency.items() if not r.endswith("/generate") for x in xs]


class Resp:
    """What a journey needs from an answer: status, final URL, text, headers (read once, fully)."""

    __slots__ = ("headers", "status_code", "text", "url")

    def __init__(self, status: int, url: str, text: str, headers: Any) -> None:
        self.status_code, self.url, self.text, self.headers = status, url, text, headers


async def timed(rec: Recorder, c: aiohttp.ClientSession, method: str, url: str,
                ok: tuple[int, ...] = (200, 201, 303), **kw: Any) -> Resp:
    t0 = time.perf_counter()
    async with c.request(method, url, allow_redirects=False, **kw) as r:
        text = await r.text()
        out = Resp(r.status, url, text, r.headers)
    rec.latency[route_of(method, url)].append((time.perf_counter() - t0) * 1000)
    if out.status_code not in ok:
        rec.errors.append(f"{method} {url} -> {out.status_code}: {text[:120]}")
    return out


async def follow(rec: Recorder, c: aiohttp.ClientSession, r: Resp) -> Resp:
    """Follow redirects one hop at a time, timing each hop as its own request."""
    while r.status_code in (302, 303):
        r = await timed(rec, c, "GET", r.headers["location"])
    return r


def csrf(r: Resp) -> str:
    m = CSRF_RE.search(r.text)
    if not m:
        raise RuntimeError(f"no CSRF token on {r.url}: {r.status_code} {r.text[:200]}")
    return m.group(1)


async def journey(i: int, base: str, rec: Recorder, tasks: int, turns: int, think: tuple[float, float],
                  rng: random.Random, connector: aiohttp.BaseConnector, tag: str) -> None:
    async def pause() -> None:
        if think[1] > 0:
            await asyncio.sleep(rng.uniform(*think))

    # one cookie jar per participant, one shared connection pool (as many browsers behind one proxy);
    # unsafe=True: aiohttp keeps cookies of an IP-address host (127.0.0.1) only with it
    async with aiohttp.ClientSession(base_url=base, connector=connector, connector_owner=False,
                                     cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     timeout=aiohttp.ClientTimeout(total=120)) as c:
        await _journey(i, rec, c, tasks, turns, pause, tag)


async def _journey(i: int, rec: Recorder, c: aiohttp.ClientSession, tasks: int, turns: int, pause: Any,
                   tag: str) -> None:
    r = await follow(rec, c, await timed(rec, c, "GET", f"/start?PROLIFIC_PID={tag}{i}&STUDY_ID=b&SESSION_ID=s{i}"))
    await pause()
    r = await follow(rec, c, await timed(rec, c, "POST", "/consent", data={"csrf_token": csrf(r), "agree": "yes"}))
    await pause()
    r = await follow(rec, c, await timed(rec, c, "POST", "/tutorial", data={"csrf_token": csrf(r), "q0": "1", "q1": "1"}))
    for t in range(tasks):
        await pause()
        r = await follow(rec, c, await timed(rec, c, "POST", "/task", data={"csrf_token": csrf(r), "task": f"task {t}"}))
        cid = ID_RE.search(str(r.url)).group(1)  # type: ignore[union-attr]
        token = csrf(r)
        h = {"X-CSRF-Token": token}
        for k in range(turns):
            await pause()
            m = await timed(rec, c, "POST", f"/api/c/{cid}/messages", headers=h, json={
                "content": f"message {t}.{k} from participant {i}", "reason": f"reason {i}.{t}.{k}",
                "idempotency_key": secrets.token_hex(12)})
            if m.status_code == 201:
                rec.thoughts_sent += 1
            g = await timed(rec, c, "POST", f"/api/c/{cid}/generate", headers=h)
            lines = [json.loads(x) for x in g.text.splitlines() if x.strip()]
            if not lines or lines[-1].get("type") != "done":
                rec.errors.append(f"generate gave no answer: {g.status_code}")
                continue
            await pause()
            rr = await timed(rec, c, "POST", f"/api/c/{cid}/messages/{lines[-1]['message_id']}/reaction", headers=h,
                             json={"content": f"reaction {i}.{t}.{k}", "idempotency_key": secrets.token_hex(12)})
            if rr.status_code == 201:
                rec.thoughts_sent += 1
        await pause()
        r = await follow(rec, c, await timed(rec, c, "POST", f"/c/{cid}/finish", data={"csrf_token": token}))
        await pause()
        r = await follow(rec, c, await timed(rec, c, "POST", f"/c/{cid}/summary", data={
            "csrf_token": csrf(r), "summary": "what I did", "expectation": "what I expected"}))
    await pause()
    r = await follow(rec, c, await timed(rec, c, "POST", "/survey", data=[
        ("csrf_token", csrf(r)), ("age", "30"), ("gender", "Woman"), ("education", "Doctorate"),
        ("occupation", "bench"), ("ai_use_frequency", "3"), ("purposes", "Work")]))
    if not str(r.url).endswith("/done"):
        rec.errors.append(f"participant {i} did not reach /done: {r.url}")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its children (the uvicorn workers)."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def postgres_cpu(port: int | None = None) -> float:
    """CPU seconds of the local PostgreSQL server (0 when it runs elsewhere): its live processes plus what
    its exited backends used (the postmaster's children times), so closed connections count too. With
    `port`, only the cluster listening there (other clusters on a shared machine are not ours); other
    clients' queries to that cluster during the load count as well."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times", "ppid", "cmdline"]):
        if proc.info["name"] not in ("postgres", "postmaster") or proc.info["cpu_times"] is None:
            continue
        try:
            parent = psutil.Process(proc.info["ppid"])
            is_postmaster = proc.info["ppid"] == 1 or parent.name() not in ("postgres", "postmaster")
            postmaster = proc if is_postmaster else parent
            if port is not None and not _listens_on(postmaster.cmdline(), port):
                continue
        except psutil.Error:
            continue
        t = proc.info["cpu_times"]
        total += t.user + t.system
        if is_postmaster:
            total += t.children_user + t.children_system  # the postmaster: its reaped backends
    return total


def _listens_on(cmdline: list[str], port: int) -> bool:
    """A postmaster started with `-p PORT` (as scripts/start_postgres.sh and pg_ctlcluster do), or, without
    any -p, the default 5432."""
    if "-p" in cmdline:
        i = cmdline.index("-p")
        return i + 1 < len(cmdline) and cmdline[i + 1] == str(port)
    return port == 5432


def pg_port(url: str) -> int:
    from sqlalchemy.engine import make_url

    return make_url(url).port or 5432


def machine_busy() -> tuple[float, float]:
    """(busy CPU seconds, all CPU seconds) of the whole machine so far, every core summed."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle, sum(t)


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db_url: str, study: Path, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    # the server's log goes to a file (a pipe nobody reads would fill and stall the server), and it runs
    # in its own process group so that stopping it also stops its worker processes
    log = study.with_name("server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "thoughttrace", "serve", "--db", db_url, "--study", str(study),
                             "--port", str(port), "--workers", str(workers)], env={**os.environ, **ENV},
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server failed to start: {study.with_name('server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start in 60 s")


def fresh_database(kind: str, pg_url: str, tmp: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite'}", lambda: None
    from sqlalchemy import create_engine, text

    schema = "bench_" + secrets.token_hex(5)
    eng = create_engine(pg_url)
    with eng.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with eng.begin() as c:
            c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        eng.dispose()

    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options=-csearch_path%3D{schema}", drop


async def run_load(base: str, n: int, tasks: int, turns: int, think: tuple[float, float], ramp: float,
                   seed: int, tag: str) -> tuple[Recorder, float]:
    rec = Recorder()
    rng = random.Random(seed)
    # one connection per participant at most; idle ones closed after 30 s, below the server keep-alive (65 s)
    connector = aiohttp.TCPConnector(limit=n + 10, keepalive_timeout=30.0)

    async def one(i: int) -> None:
        await asyncio.sleep(ramp * i / max(n, 1))
        try:
            await journey(i, base, rec, tasks, turns, think, random.Random(rng.random()), connector, tag)
        except Exception as exc:  # a broken journey is an error to report, not a crash of the bench
            rec.errors.append(f"participant {i}: {type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    await connector.close()
    return rec, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", "-n", type=int, default=200)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--pg-url", default=os.environ.get("THOUGHTTRACE_TEST_PG_URL", DEFAULT_PG))
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--turns", type=int, default=2)
    ap.add_argument("--think", type=float, nargs=2, default=(5.0, 15.0), metavar=("MIN", "MAX"),
                    help="seconds a participant pauses between steps (uniform)")
    ap.add_argument("--ramp", type=float, default=None, help="seconds over which participants arrive "
                    "(default 30; 0 with --pace stress)")
    ap.add_argument("--pace", choices=["normal", "stress"], default="normal",
                    help="stress: no think time and no ramp (every step as soon as the last answered)")
    ap.add_argument("--port", type=int, default=None, help="port of the server it starts (default: a free one)")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (PostgreSQL only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    if args.pace == "stress":
        args.think = (0.0, 0.0)
    if args.ramp is None:
        args.ramp = 0.0 if args.pace == "stress" else 30.0
    target = 250.0 if args.pace == "stress" else 100.0

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        study = tmp / "study.yaml"
        study.write_text(STUDY.format(tasks=args.tasks), encoding="utf-8")
        db_url, drop = fresh_database(args.db, args.pg_url, tmp)
        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(db_url, study, port, args.workers)
        try:
            warm, _ = asyncio.run(run_load(base, 1, args.tasks, args.turns, (0, 0), 0, args.seed, "warmup"))
            alone, _ = asyncio.run(run_load(base, 1, args.tasks, args.turns, (0, 0), 0, args.seed, "alone"))
            server0, own0, (busy0, all0) = tree_cpu(proc.pid), time.process_time(), machine_busy()
            db0 = postgres_cpu(pg_port(args.pg_url)) if args.db == "postgres" else 0.0
            rec, wall = asyncio.run(run_load(base, args.participants, args.tasks, args.turns, tuple(args.think),
                                             args.ramp, args.seed + 1, "load"))
            server_cpu, own_cpu = tree_cpu(proc.pid) - server0, time.process_time() - own0
            db_cpu = postgres_cpu(pg_port(args.pg_url)) - db0 if args.db == "postgres" else 0.0
            busy1, all1 = machine_busy()
            busy_share = (busy1 - busy0) / max(all1 - all0, 1e-9)
            export = httpx.get(f"{base}/admin/export.jsonl", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                               timeout=300)
            convs = [json.loads(line) for line in export.text.splitlines()]
            exported = sum(len(m.get("reasons") or []) + len(m.get("reactions") or [])
                           for cv in convs for m in cv["messages"])
        finally:
            server_errors = study.with_name("server.log").read_text(errors="replace").count("Traceback")
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            drop()

    sent = warm.thoughts_sent + alone.thoughts_sent + rec.thoughts_sent  # every journey's notes are exported
    nm, nm_alone = rec.non_model(), alone.non_model()
    gen = [x for r, xs in rec.latency.items() if r.endswith("/generate") for x in xs]
    print(f"platform load: {args.participants} participants, {args.tasks} tasks x {args.turns} turns, db={args.db}, "
          f"workers={args.workers}, pace={args.pace}, "
          f"think {args.think[0]:g}-{args.think[1]:g} s, ramp {args.ramp:g} s, wall {wall:.1f} s, "
          f"{sum(len(v) for v in rec.latency.values()) / wall:.1f} req/s")
    n_req = sum(len(v) for v in rec.latency.values())
    print(f"CPU per request: server {server_cpu / n_req * 1000:.2f} ms ({server_cpu:.1f} s over {args.workers} "
          f"worker(s)), load generator {own_cpu / n_req * 1000:.2f} ms ({own_cpu:.1f} s)"
          + (f", PostgreSQL {db_cpu / n_req * 1000:.2f} ms ({db_cpu:.1f} s)" if args.db == "postgres" else "")
          + f"; machine busy "
          f"{busy_share:.0%} of {psutil.cpu_count()} cores during the load")
    print(f"{'route':44s} {'n':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}")
    for route in sorted(rec.latency):
        xs = rec.latency[route]
        print(f"{route:44s} {len(xs):6d} {pct(xs, 50):8.1f} {pct(xs, 95):8.1f} {pct(xs, 99):8.1f}")
    p50, p95, p99 = pct(nm, 50), pct(nm, 95), pct(nm, 99)
    a50, a95 = pct(nm_alone, 50), pct(nm_alone, 95)
    print(f"{'NON-MODEL ROUTES (all)':44s} {len(nm):6d} {p50:8.1f} {p95:8.1f} {p99:8.1f}")
    print(f"{'baseline: one participant alone':44s} {len(nm_alone):6d} {a50:8.1f} {a95:8.1f} {pct(nm_alone, 99):8.1f}")
    print(f"ratio loaded/alone: p50 x{p50 / a50:.2f}, p95 x{p95 / a95:.2f}; model route /generate p50 "
          f"{statistics.median(gen) if gen else float('nan'):.1f} ms")
    print(f"errors: {len(rec.errors) + len(alone.errors) + len(warm.errors)} (server tracebacks: {server_errors})")
    for e in (warm.errors + alone.errors + rec.errors)[:10]:
        print("  ", e)
    print(f"thoughts sent: {sent}, exported: {exported} -> {'EQUAL' if sent == exported else 'MISMATCH'}")
    all_errors = len(rec.errors) + len(alone.errors) + len(warm.errors)
    verdict = "PASS" if p95 < target and sent == exported and not all_errors else "FAIL"
    print(f"target p95 < {target:g} ms, zero errors and zero lost notes: {verdict}")
    if args.json:
        print(json.dumps({"format_version": 1, "participants": args.participants, "db": args.db,
                          "workers": args.workers, "pace": args.pace, "p50_ms": p50, "p95_ms": p95,
                          "p99_ms": p99, "baseline_p50_ms": a50, "baseline_p95_ms": a95, "errors": all_errors,
                          "thoughts_sent": sent, "thoughts_exported": exported, "wall_s": wall,
                          "requests_per_s": n_req / wall, "server_cpu_ms_per_request": server_cpu / n_req * 1000,
                          "load_generator_cpu_ms_per_request": own_cpu / n_req * 1000,
                          "postgres_cpu_ms_per_request": db_cpu / n_req * 1000 if args.db == "postgres" else None,
                          "machine_busy_share": busy_share}))
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
