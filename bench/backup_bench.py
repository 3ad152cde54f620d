"""Backup, verify and restore times and sizes of a study database of N participants, on SQLite and PostgreSQL.

Fills a fresh database at the schema's head with what a finished study holds per participant: 2 tasks x 5
turns (a user message of ~200 characters with its reason, an answer of ~1,500 characters with its
reaction), a survey, events. Then times `backup` (online: SQLite backup API / pg_dump custom format),
`verify` (restore into a scratch database + compare every table's count) and `restore` into a fresh
database, and prints sizes.

    python bench/backup_bench.py                          # 1,000 participants, both engines
    python bench/backup_bench.py --db sqlite -n 5000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from thoughttrace.collect import backup as backup_mod
from thoughttrace.collect.db import Conversation, Database, Event, Message, Participant, Thought
from thoughttrace.collect.migrate import upgrade

DEFAULT_PG = "postgresql+psycopg://thoughttrace:thoughttrace@127.0.0.1:5432/thoughttrace_test"
WORDS = ("plan", "trip", "budget", "recipe", "code", "error", "python", "travel", "museum", "weekend", "lake",
         "question", "answer", "idea", "explain", "why", "because", "maybe", "useful", "detail", "example", "step",
         "list", "compare", "option", "cost", "time")


def prose(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def fill(url: str, n: int, seed: int = 0) -> None:
    """n finished participants, inserted in batches through Core (the app's tables and defaults)."""
    rng = random.Random(seed)
    db = Database(url)
    upgrade(db.engine)
    t0 = datetime.now(UTC) - timedelta(days=2)
    pid = cid = mid = 0
    survey = {"age": 34, "gender": "Woman", "education": "Master's degree", "occupation": "Nurse",
              "ai_use_frequency": 4, "purposes": "Work, Writing"}
    for start in range(0, n, 200):
        parts, convs, msgs, thoughts, events = [], [], [], [], []
        for _ in range(start, min(n, start + 200)):
            pid += 1
            at = t0 + timedelta(seconds=pid * 30)
            parts.append({"id": pid, "public_id": secrets.token_urlsafe(12), "prolific_pid": f"bench{pid:06d}",
                          "study_id": "benchstudy", "session_id": f"s{pid}", "stage": "done", "task_index": 2,
                          "quiz_attempts": 1, "survey": survey, "design_row": pid % 4, "consented_at": at,
                          "quiz_passed_at": at, "completed_at": at + timedelta(minutes=25), "created_at": at,
                          "updated_at": at})
            events.append({"participant_id": pid, "kind": "assigned", "detail": "alpha", "created_at": at})
            for task in range(2):
                cid += 1
                convs.append({"id": cid, "public_id": secrets.token_urlsafe(12), "participant_id": pid,
                              "task_index": task, "task_statement": prose(rng, 60), "model_key": "alpha",
                              "model_name": "Alpha", "model_provider": "Lab", "model_spec": "scripted",
                              "started_at": at, "deadline_at": at + timedelta(minutes=10), "ended_at": at,
                              "task_summary": prose(rng, 120), "task_expectation": prose(rng, 80),
                              "created_at": at, "updated_at": at})
                for turn in range(5):
                    for role, size, kind in (("user", 200, "reason"), ("assistant", 1500, "reaction")):
                        mid += 1
                        msgs.append({"id": mid, "public_id": secrets.token_urlsafe(12), "conversation_id": cid,
                                     "seq": 2 * turn + (role == "assistant"), "role": role,
                                     "content": prose(rng, size), "client_key": secrets.token_hex(8),
                                     "seed": rng.randrange(2**31) if role == "assistant" else None,
                                     "latency_ms": rng.randrange(800, 3000) if role == "assistant" else None,
                                     "created_at": at})
                        thoughts.append({"message_id": mid, "kind": kind, "content": prose(rng, 80),
                                         "client_key": secrets.token_hex(8), "typing_ms": 9000, "keystrokes": 85,
                                         "created_at": at})
        with db.engine.begin() as c:
            for table, rows in ((Participant, parts), (Conversation, convs), (Message, msgs), (Thought, thoughts),
                                (Event, events)):
                c.execute(insert(table.__table__), rows)  # type: ignore[attr-defined]
    db.dispose()


def fresh(kind: str, pg_url: str, tmp: Path, name: str) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / (name + '.sqlite')}", lambda: None
    base = make_url(pg_url)
    db_name = f"tt_bench_{name}_{secrets.token_hex(3)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{db_name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=db_name).render_as_string(hide_password=False), drop


def cpu_seconds() -> float:
    """CPU time of this process and of the tools it waited for (pg_dump, pg_restore): wall time is noisy on a
    shared machine, CPU time much less so."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run(kind: str, n: int, pg_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tt-backup-bench-") as tmpdir:
        tmp = Path(tmpdir)
        live, drop_live = fresh(kind, pg_url, tmp, "live")
        target, drop_target = fresh(kind, pg_url, tmp, "restored")
        try:
            t = time.perf_counter()
            fill(live, n)
            fill_s = time.perf_counter() - t
            live_bytes = (Path(make_url(live).database or "").stat().st_size if kind == "sqlite" else _pg_size(live))
            settings = durability(live) if kind == "postgresql" else {}
            out = tmp / ("backup.sqlite" if kind == "sqlite" else "backup.dump")
            t, c = time.perf_counter(), cpu_seconds()
            manifest = backup_mod.backup(live, out, study_version="bench@0")
            backup_s, backup_cpu = time.perf_counter() - t, cpu_seconds() - c
            t, c = time.perf_counter(), cpu_seconds()
            report = backup_mod.verify(out, server_url=pg_url if kind == "postgresql" else None)
            verify_s, verify_cpu = time.perf_counter() - t, cpu_seconds() - c
            t, c = time.perf_counter(), cpu_seconds()
            backup_mod.restore(out, target)
            restore_s, restore_cpu = time.perf_counter() - t, cpu_seconds() - c
            assert report.ok, report.problems
        finally:
            drop_live()
            drop_target()
    return {"engine": kind, "participants": n, "messages": manifest["counts"]["messages"],
            "thoughts": manifest["counts"]["thoughts"], "live_db_bytes": live_bytes,
            "backup_bytes": manifest["size_bytes"], "fill_s": round(fill_s, 2), "backup_s": round(backup_s, 2),
            "verify_s": round(verify_s, 2), "restore_s": round(restore_s, 2),
            # client-side CPU (this process + pg_dump/pg_restore); the PostgreSQL server's own CPU is not in it
            "backup_client_cpu_s": round(backup_cpu, 2), "verify_client_cpu_s": round(verify_cpu, 2),
            "restore_client_cpu_s": round(restore_cpu, 2), "server_version": _server_version(live, kind),
            **({"server_settings": settings} if settings else {})}


def _server_version(url: str, kind: str) -> str:
    import sqlite3

    if kind == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    return "PostgreSQL " + backup_mod._pg_tool_output("pg_dump", ["--version"]).split()[2]


def durability(url: str) -> dict[str, str]:
    """fsync and synchronous_commit of the server: a throwaway test cluster turns them off, which makes a
    restore faster than on a production server (say so beside the figures)."""
    eng = create_engine(url)
    with eng.connect() as c:
        got = {k: str(c.execute(text(f"SHOW {k}")).scalar_one()) for k in ("fsync", "synchronous_commit")}
    eng.dispose()
    return got


def machine() -> dict[str, Any]:
    """Where the figures come from: cores and the load average when the run began (a shared machine)."""
    return {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "shared": True}


def _pg_size(url: str) -> int:
    eng = create_engine(url)
    with eng.connect() as c:
        size = int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    eng.dispose()
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", "-n", type=int, default=1000)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", default=os.environ.get("THOUGHTTRACE_TEST_PG_URL", DEFAULT_PG))
    ap.add_argument("--out", type=Path, default=None, help="also write the results as JSON here "
                    "(e.g. bench/results/backup_1000.json)")
    args = ap.parse_args()
    where = machine()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else ["postgresql" if args.db == "postgres" else "sqlite"]
    rows = [run(k, args.participants, args.pg_url) for k in kinds]
    print(f"{'engine':11s} {'particip.':>9s} {'messages':>9s} {'db MB':>7s} {'backup MB':>10s} {'backup s':>9s} "
          f"{'verify s':>9s} {'restore s':>10s}")
    for r in rows:
        print(f"{r['engine']:11s} {r['participants']:9d} {r['messages']:9d} {r['live_db_bytes'] / 1e6:7.1f} "
              f"{r['backup_bytes'] / 1e6:10.1f} {r['backup_s']:9.2f} {r['verify_s']:9.2f} {r['restore_s']:10.2f}")
    doc = {"format_version": 1, "bench": "backup", "machine": where,
           "measured_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"), "results": rows}
    print(json.dumps(doc))
    if args.out:
        args.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    sys.exit(0)


if __name__ == "__main__":
    main()
