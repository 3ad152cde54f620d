"""Model assignment and Prolific entry under real concurrency: 200 participants at once against
`thoughttrace serve --workers 2` on PostgreSQL (two processes racing on one database)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections import Counter

import httpx
import pytest
from collect_helpers import free_port, start_server, stop_server
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # ~2.5 min on 2 shared cores
ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}
CSRF = re.compile(r'(?:name="csrf_token" value|data-csrf)="([^"]+)"')
STUDY = """\
format_version: 1
name: race
tasks_per_participant: 2
timer_minutes: 30
models:
  - {key: alpha, spec: scripted, options: {default: "Answer A."}}
  - {key: beta, spec: scripted, options: {default: "Answer B."}}
tasks:
  - {statement: "Fixed task one"}
  - {statement: "Fixed task two"}
"""


async def one(i: int, base: str, transport: httpx.AsyncHTTPTransport, errors: list[str]) -> None:
    c = httpx.AsyncClient(base_url=base, transport=transport, timeout=120, follow_redirects=True)
    other = httpx.AsyncClient(base_url=base, transport=transport, timeout=120, follow_redirects=True)
    try:
        # the same Prolific link opened twice at the same moment (double click, two tabs): one participant
        r, _ = await asyncio.gather(c.get(f"/start?PROLIFIC_PID=pid{i}&STUDY_ID=st&SESSION_ID=a{i}"),
                                    other.get(f"/start?PROLIFIC_PID=pid{i}&STUDY_ID=st&SESSION_ID=a{i}"))
        found = CSRF.search(r.text)
        if found is None:
            raise RuntimeError(f"no CSRF token after /start: {r.status_code} {r.text[:300]}")
        token = found.group(1)
        # a new Prolific session in the same browser (its cookie) is logged as a session change; someone
        # else holding only the Prolific id (no cookie, another SESSION_ID) is asked for the resume code
        stranger = httpx.AsyncClient(base_url=base, transport=transport, timeout=120, follow_redirects=True)
        again, strange = await asyncio.gather(
            c.get(f"/start?PROLIFIC_PID=pid{i}&STUDY_ID=st&SESSION_ID=b{i}"),
            stranger.get(f"/start?PROLIFIC_PID=pid{i}&STUDY_ID=st&SESSION_ID=c{i}"))
        if again.status_code != 200 or strange.status_code != 403 or "resume code" not in strange.text.lower():
            errors.append(f"{i}: same browser {again.status_code}, stranger {strange.status_code}")
        r = await c.post("/consent", data={"csrf_token": token, "agree": "yes"})
        r = await c.post("/tutorial", data={"csrf_token": token, "q0": "1", "q1": "1"})
        for t in range(2):
            r = await c.post("/task", data={"csrf_token": token, "task": f"task {t}"})
            cid = str(r.url).split("/c/")[1]
            h = {"X-CSRF-Token": token}
            m = await c.post(f"/api/c/{cid}/messages", headers=h, json={
                "content": f"hello {i}", "reason": "to see", "idempotency_key": secrets.token_hex(10)})
            g = await c.post(f"/api/c/{cid}/generate", headers=h)
            mid = json.loads(g.text.splitlines()[-1])["message_id"]
            await c.post(f"/api/c/{cid}/messages/{mid}/reaction", headers=h,
                         json={"content": "fine answer", "idempotency_key": secrets.token_hex(10)})
            r = await c.post(f"/c/{cid}/finish", data={"csrf_token": token})
            r = await c.post(f"/c/{cid}/summary", data={"csrf_token": token, "summary": "s", "expectation": "e"})
            if m.status_code != 201:
                errors.append(f"{i}: message {m.status_code}")
    except Exception as exc:  # collected and asserted on, so one broken journey is named
        req = getattr(exc, "_request", None)
        errors.append(f"participant {i}: {type(exc).__name__}: {exc} {exc.__context__!r} ({req.method + ' ' + str(req.url) if req else ''})")
    # no client.aclose(): it would close the transport all participants share (and their connections)


async def crowd(base: str, n: int) -> list[str]:
    errors: list[str] = []
    # one pool for everyone (as many browsers behind one proxy); connections released well before the
    # server's 65 s keep-alive ends them
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(
        max_connections=2 * n + 10, max_keepalive_connections=2 * n + 10, keepalive_expiry=30.0))
    await asyncio.gather(*(one(i, base, transport, errors) for i in range(n)))
    await transport.aclose()
    return errors


def test_200_participants_over_two_workers_on_postgres(pg_url, tmp_path):
    from collect_helpers import fresh_pg_url

    url, drop = fresh_pg_url(pg_url)
    study = tmp_path / "race.yaml"
    study.write_text(STUDY, encoding="utf-8")
    port = free_port()
    proc = start_server(url, study, port, workers=2)
    try:
        errors = asyncio.run(crowd(f"http://127.0.0.1:{port}", 200))
        assert errors == []
        eng = create_engine(url)
        with eng.connect() as conn:
            people = conn.execute(text("SELECT prolific_pid, COUNT(*) FROM participants GROUP BY prolific_pid")).all()
            convs = conn.execute(text("SELECT participant_id, task_index, model_key FROM conversations")).all()
            tasks = conn.execute(text("SELECT task_statement, task_index, model_key FROM conversations")).all()
            changes = conn.execute(text("SELECT COUNT(*) FROM events WHERE kind = 'session_change'")).scalar()
        eng.dispose()
    finally:
        stop_server(proc)
        drop()
    assert len(people) == 200 and all(n == 1 for _pid, n in people), "a Prolific id became several participants"
    assert changes == 200  # each browser's second SESSION_ID was logged, not made a person
    by_person: dict[int, list[str]] = {}
    for pid, _k, model in sorted(convs, key=lambda r: (r[0], r[1])):
        by_person.setdefault(pid, []).append(model)
    assert len(by_person) == 200 and all(len(set(seq)) == 2 for seq in by_person.values()), \
        "someone got the same model twice"
    cells = Counter((model, k) for _p, k, model in convs)
    assert set(cells) == {("alpha", 0), ("alpha", 1), ("beta", 0), ("beta", 1)}
    assert max(cells.values()) - min(cells.values()) <= 1, cells
    # the fixed task list rotates through the same race-free design rows: (task, position) balanced too,
    # and crossed with the models (each model meets each task first equally often, within one)
    task_cells = Counter((statement, k) for statement, k, _m in tasks)
    assert len(task_cells) == 4 and max(task_cells.values()) - min(task_cells.values()) <= 1, task_cells
    crossed = Counter((statement, model) for statement, k, model in tasks if k == 0)
    assert len(crossed) == 4 and max(crossed.values()) - min(crossed.values()) <= 1, crossed
