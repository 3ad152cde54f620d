"""How long a participant's request waits while the researcher exports a large study (SQLite).

A real server (uvicorn, one worker, loopback HTTP) on a SQLite study of N seeded participants (two
conversations of six messages with notes each); one real participant at the chat page. We time the
participant's `GET /api/c/{cid}/state` requests, first with nothing else running, then while
`/admin/export.jsonl` runs (repeated until the timed requests are done), and print the median, p95 and
worst request both ways, the extra wait, and how long one export took. On a machine shared with other
busy processes the worst request mostly measures the operating system's scheduler: read p95 beside it
and the machine's load average.

    python bench/export_stall.py --participants 1000 [--requests 60] [--route /admin/export.jsonl]

Before issue 23 the export ran through the platform's BEGIN IMMEDIATE transactions on the event loop
(1,000 participants: see docs/platform.md for the figures measured); it now reads from
`Database.snapshot()` in pieces.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "collect"))

ADMIN = "admin-token-for-bench-0123456789"
STUDY_YAML = """
name: bench
models:
  - {key: alpha, spec: scripted, options: {default: "A scripted answer."}}
  - {key: beta, spec: scripted, options: {default: "A scripted answer."}}
tasks_per_participant: 2
"""


def seed(db_url: str, n: int) -> None:
    """N finished participants, inserted with Core in one transaction (seconds, not an HTTP run)."""
    from datetime import UTC, datetime

    from thoughttrace.collect.db import Conversation, Database, Message, Participant, Thought
    from thoughttrace.collect.migrate import upgrade

    db = Database(db_url)
    upgrade(db.engine)
    now = datetime.now(UTC)
    P, C, M, T = (x.__table__ for x in (Participant, Conversation, Message, Thought))
    with db.engine.begin() as c:
        c.execute(P.insert(), [{"id": i, "public_id": f"p{i:06d}", "stage": "done", "task_index": 1, "quiz_attempts": 1,
                                "design_row": i % 2, "survey": {"age": "30"}, "created_at": now, "updated_at": now,
                                "completed_at": now} for i in range(1, n + 1)])
        c.execute(C.insert(), [{"id": 2 * i + k, "public_id": f"c{2 * i + k:07d}", "participant_id": i, "task_index": k,
                                "task_statement": "Plan a trip to the sea with my family", "model_key": "ab"[k],
                                "model_name": "ab"[k], "model_provider": "x", "model_spec": "scripted",
                                "started_at": now, "deadline_at": now, "ended_at": now, "task_summary": "planned",
                                "task_expectation": "ideas", "created_at": now, "updated_at": now}
                               for i in range(1, n + 1) for k in range(2)])
        msgs, notes = [], []
        for conv in range(2, 2 * n + 2):
            for seq in range(6):
                mid = conv * 6 + seq
                role = "user" if seq % 2 == 0 else "assistant"
                msgs.append({"id": mid, "public_id": f"m{mid:08d}", "conversation_id": conv, "seq": seq, "role": role,
                             "content": "Some text of a typical length for a chat message " * 3, "created_at": now,
                             "seed": 1 if role == "assistant" else None})
                notes.append({"message_id": mid, "kind": "reason" if role == "user" else "reaction",
                              "content": "because I wanted to see what it says", "created_at": now})
        c.execute(M.insert(), msgs)
        c.execute(T.insert(), notes)
    db.dispose()


def pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--route", default="/admin/export.jsonl")
    args = ap.parse_args()
    from collect_helpers import Participant

    tmp = Path(tempfile.mkdtemp(prefix="export-stall-"))
    db_url = f"sqlite:///{tmp / 'study.sqlite'}"
    (tmp / "study.yaml").write_text(STUDY_YAML)
    seed(db_url, args.participants)
    port = free_port()
    env = {**os.environ, "THOUGHTTRACE_DB_URL": db_url, "THOUGHTTRACE_STUDY": str(tmp / "study.yaml"),
           "THOUGHTTRACE_MODE": "test", "THOUGHTTRACE_ADMIN_TOKEN": ADMIN,
           "THOUGHTTRACE_SECRET_KEY": "secret-key-for-bench-0123456789"}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "thoughttrace.collect.app:app_from_env",
                               "--port", str(port), "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        p = Participant(httpx.Client(base_url=base, timeout=60))
        p.start()
        p.consent()
        p.quiz()
        p.task("Plan a trip")

        def timed(n: int) -> list[float]:
            out = []
            for _ in range(n):
                t0 = time.perf_counter()
                r = p.c.get(f"/api/c/{p.cid}/state")
                out.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
                time.sleep(0.01)
            return out

        timed(10)  # warm up
        idle = timed(args.requests)
        stop = threading.Event()
        exports: list[float] = []
        sizes: list[int] = []

        def exporter() -> None:
            with httpx.Client(base_url=base, timeout=600, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    r = c.get(args.route)
                    assert r.status_code == 200, r.text[:300]
                    exports.append(time.perf_counter() - t0)
                    sizes.append(len(r.content))

        th = threading.Thread(target=exporter)
        th.start()
        time.sleep(0.05)
        busy = timed(args.requests)
        stop.set()
        th.join()
        result = {
            "participants": args.participants, "route": args.route, "requests": args.requests,
            "idle_median_ms": round(statistics.median(idle), 1), "idle_max_ms": round(max(idle), 1),
            "during_export_median_ms": round(statistics.median(busy), 1), "during_export_max_ms": round(max(busy), 1),
            "idle_p95_ms": round(pct(idle, 95), 1), "during_export_p95_ms": round(pct(busy, 95), 1),
            "extra_wait_p95_ms": round(pct(busy, 95) - pct(idle, 95), 1),
            "extra_wait_max_ms": round(max(busy) - statistics.median(idle), 1),
            "extra_wait_median_ms": round(statistics.median(busy) - statistics.median(idle), 1),
            "exports_run": len(exports), "export_seconds_median": round(statistics.median(exports), 2),
            "export_bytes": sizes[-1] if sizes else 0,
        }
        result["load_average_1min"] = round(os.getloadavg()[0], 2)
        print(json.dumps(result, indent=1))
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
