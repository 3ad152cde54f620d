"""Kill the server process mid-journey (SIGKILL, no clean shutdown), start it again: nothing is lost."""

from __future__ import annotations

import json
import signal

import httpx
from collect_helpers import Participant, free_port, key, ndjson, start_server, write_study

from thoughttrace.data import Conversation

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}


def test_killing_the_server_mid_journey_loses_nothing(db_url, tmp_path):
    study = write_study(tmp_path / "study.yaml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(db_url, study, port)
    try:
        c = httpx.Client(base_url=base, timeout=30)
        p = Participant(c, PROLIFIC_PID="pidK", STUDY_ID="st", SESSION_ID="sK")
        p.start()
        p.consent()
        p.quiz()
        p.task("Find a recipe")
        notes = []
        p.turn("first message", "reason-1", "reaction-1")
        notes += ["reason-1", "reaction-1"]
        k = key()
        assert p.send("second message", "reason-2", k=k).status_code == 201
        notes.append("reason-2")
        # the accepted message and its reason are committed: kill the process before the answer
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start_server(db_url, study, port)
        # the same browser (cookie) resumes on the chat, the unanswered message waiting for Retry
        r = c.get("/next", follow_redirects=True)
        assert f"/c/{p.cid}" in str(r.url)
        state = c.get(f"/api/c/{p.cid}/state").json()
        assert [m["content"] for m in state["messages"]] == ["first message", ndjson_first(state), "second message"]
        assert state["awaiting_answer"] is True
        # the client replays the post it never saw answered: stored once
        assert p.send("second message", "reason-2", k=k).status_code == 200
        g = p.generate()
        assert g.status_code == 200
        mid = ndjson(g.text)[-1]["message_id"]
        assert p.react(mid, "reaction-2").status_code == 201
        notes.append("reaction-2")
        p.finish()
        p.summary()
        p.task("Second task")
        p.turn("third", "reason-3", "reaction-3")
        notes += ["reason-3", "reaction-3"]
        # kill again between the reaction and the end of the task
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = start_server(db_url, study, port)
        p.finish()
        p.summary()
        assert str(p.survey().url).endswith("/done")
        export = c.get("/admin/export.jsonl", headers=ADMIN).text
        convs = [Conversation.model_validate(json.loads(line)) for line in export.splitlines()]
        assert sorted(t.content for cv in convs for m in cv.messages for t in m.thoughts) == sorted(notes)
        assert [len(cv.messages) for cv in convs] == [4, 2]
    finally:
        proc.kill()
        proc.wait(10)


def ndjson_first(state):
    return state["messages"][1]["content"]
