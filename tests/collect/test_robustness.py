"""Answers record how they ended (finish_reason) and a cut-off one is offered again; text that is not valid
Unicode is a 400 naming the field (SQLite and PostgreSQL); the study time limit keeps a typed draft."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from collect_helpers import Participant, ndjson

from thoughttrace.llm.backends.scripted import ScriptedBackend
from thoughttrace.llm.model import Model
from thoughttrace.llm.types import ChatMessage, Generation, GenerationConfig, Usage

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}


def ready(client: Any, **prolific: str) -> Participant:
    p = Participant(client(), **prolific)
    p.start()
    p.consent()
    p.quiz()
    p.task()
    return p


class _Ends(ScriptedBackend):
    """Streams its words, then closes with the given finish reasons in turn (None: no end marker)."""

    def __init__(self, *reasons: str | None) -> None:
        super().__init__(outputs=["A complete and careful answer."])
        self.reasons = list(reasons)

    async def stream(self, messages: list[ChatMessage], config: GenerationConfig) -> AsyncIterator[str | Generation]:
        reason = self.reasons.pop(0) if self.reasons else "stop"
        words = ["A half-written ", "answer"] if reason is None else ["A complete ", "and careful answer."]
        for w in words:
            yield w
        yield Generation(text="".join(words), usage=Usage(), finish_reason=reason)


def pool(*reasons: str | None) -> dict[str, Model]:
    return {k: Model(_Ends(*reasons), max_retries=0) for k in ("alpha", "beta")}


def last_assistant(p: Participant) -> dict[str, Any]:
    return [m for m in p.c.get(f"/api/c/{p.cid}/state").json()["messages"] if m["role"] == "assistant"][-1]


def test_every_answer_records_and_exports_its_finish_reason(app_maker):
    client, _app, _ = app_maker(models=pool("stop", "length"))
    p = ready(client)
    for text in ("first", "second"):
        assert p.send(text, f"reason for {text}").status_code == 201
        done = ndjson(p.generate().text)[-1]
        assert done["type"] == "done" and done["incomplete"] is False
        assert p.react(done["message_id"], "fine").status_code == 201
    export = [json.loads(x) for x in client().get("/admin/export.jsonl", headers=ADMIN).text.splitlines()]
    reasons = [m["metadata"]["finish_reason"] for r in export for m in r["messages"] if m["type"] == "assistant"]
    assert reasons == ["stop", "length"]


def test_a_stream_without_its_end_marker_is_incomplete_and_retry_replaces_it(app_maker):
    client, app, _ = app_maker(models=pool(None, "stop"))
    p = ready(client)
    assert p.send("help me", "need help").status_code == 201
    events = ndjson(p.generate().text)
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "dropped" and events[-1]["incomplete"]
    cut = last_assistant(p)
    assert cut["incomplete"] is True and cut["finish_reason"] == "dropped" and cut["content"] == "A half-written answer"
    # Retry (the page calls generate again): the cut answer is answered again, in its place
    again = ndjson(p.generate().text)[-1]
    assert again["type"] == "done" and again["finish_reason"] == "stop" and not again["incomplete"]
    msgs = p.c.get(f"/api/c/{p.cid}/state").json()["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"] and msgs[1]["content"] == "A complete and careful answer."
    events_csv = client().get("/admin/events.csv", headers=ADMIN).text
    assert "answer_dropped" in events_csv and "A half-written answer" in events_csv
    # a stored complete answer is replayed, never regenerated
    assert ndjson(p.generate().text)[-1]["message_id"] == msgs[1]["id"]


def test_an_incomplete_answer_can_be_kept_by_reacting_to_it(app_maker):
    client, _app, _ = app_maker(models=pool(None))
    p = ready(client)
    p.send("help me", "need help")
    done = ndjson(p.generate().text)[-1]
    assert p.react(done["message_id"], "it stopped mid-sentence").status_code == 201
    # reacted to: it is the answer now; generate replays it
    assert ndjson(p.generate().text)[-1]["message_id"] == done["message_id"]


BAD = "bad \ud800 text"


@pytest.mark.parametrize("field, where", [("content", "content"), ("reason", "reason"),
                                          ("reason_label", "reason_label")])
def test_a_lone_surrogate_in_a_message_is_a_400_naming_the_field(app_maker, field, where):
    client, _app, _ = app_maker()
    p = ready(client)
    body = {"content": "hello", "reason": "a reason", "idempotency_key": "k" * 16, field: BAD}
    raw = json.dumps(body).encode()  # ensure_ascii: the lone surrogate travels as the JSON escape \ud800
    r = p.c.post(f"/api/c/{p.cid}/messages", content=raw,
                 headers={"X-CSRF-Token": p.csrf, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith(f"{where}: ") and "surrogate" in r.json()["error"]
    assert p.c.get(f"/api/c/{p.cid}/state").json()["messages"] == []


def test_a_lone_surrogate_in_a_reaction_is_a_400(app_maker):
    client, _app, _ = app_maker()
    p = ready(client)
    p.send("hello", "a reason")
    mid = ndjson(p.generate().text)[-1]["message_id"]
    raw = b'{"content": "ok \\udfff", "idempotency_key": "kkkkkkkkkkkkkkkk"}'
    r = p.c.post(f"/api/c/{p.cid}/messages/{mid}/reaction", content=raw,
                 headers={"X-CSRF-Token": p.csrf, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("content: ")
    # a proper pair of surrogates is an ordinary character
    ok = p.c.post(f"/api/c/{p.cid}/messages/{mid}/reaction", content=b'{"content": "ok \\ud83d\\ude00", '
                  b'"idempotency_key": "kkkkkkkkkkkkkkkk"}', headers={"X-CSRF-Token": p.csrf,
                                                                     "Content-Type": "application/json"})
    assert ok.status_code == 201 and ok.json()["reaction"]["content"] == "ok \U0001F600"


def test_the_study_time_limit_keeps_a_typed_draft(app_maker):
    client, app, _ = app_maker(study_time_limit_minutes=30)
    p = ready(client, PROLIFIC_PID="late01", STUDY_ID="st", SESSION_ID="s1")
    assert p.c.get(f"/api/c/{p.cid}/state").json()["study_deadline"] is not None
    from sqlalchemy import update

    from thoughttrace.collect.db import Participant as Row
    from thoughttrace.collect.db import utcnow
    with app.state.ctx.db.session() as s:  # the participant entered 31 minutes ago
        s.execute(update(Row).values(created_at=utcnow() - timedelta(minutes=31)))
    r = p.send("my half-finished thought about", "because I was curious")
    assert r.status_code == 409 and r.json()["draft_saved"] is True and r.json()["redirect"] == "/end"
    events = client().get("/admin/events.csv", headers=ADMIN).text
    assert "draft_at_time_limit" in events and "my half-finished thought about" in events
    assert "because I was curious" in events
    assert str(p.c.get("/next", follow_redirects=True).url).endswith("/end")
