"""The answer streams to the browser as the model writes it; a failure mid-stream stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from collect_helpers import Participant, ndjson

from thoughttrace.llm.backends.scripted import ScriptedBackend
from thoughttrace.llm.errors import ServerError
from thoughttrace.llm.model import Model
from thoughttrace.llm.types import ChatMessage, Generation, GenerationConfig


def ready(client: Any) -> Participant:
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    p.task()
    return p


def test_answer_arrives_in_pieces_and_is_stored_whole(app_maker):
    client, _, _ = app_maker()
    p = ready(client)
    assert p.send("tell me about Lyon", "planning a trip").status_code == 201
    events = ndjson(p.generate().text)
    deltas = [e["text"] for e in events if e["type"] == "delta"]
    assert events[0]["type"] == "start" and events[-1]["type"] == "done"
    assert len(deltas) > 3, "the answer came in one piece: not streamed"
    assert "".join(deltas) == events[-1]["content"]
    stored = p.c.get(f"/api/c/{p.cid}/state").json()["messages"][-1]
    assert stored["role"] == "assistant" and stored["content"] == events[-1]["content"]


class _BreaksMidStream(ScriptedBackend):
    """Streams two words, then the connection to the model dies (once)."""

    def __init__(self) -> None:
        super().__init__(outputs=["A complete and careful answer."])
        self.broken = True

    async def stream(self, messages: list[ChatMessage], config: GenerationConfig) -> AsyncIterator[str | Generation]:
        if self.broken:
            self.broken = False
            yield "A half-written "
            yield "answer"
            raise ServerError("model server went away")
        async for item in super().stream(messages, config):
            yield item


def test_failure_mid_stream_stores_nothing_and_retry_works(app_maker):
    pool = {k: Model(_BreaksMidStream(), max_retries=0) for k in ("alpha", "beta")}
    client, _, _ = app_maker(models=pool)
    p = ready(client)
    assert p.send("help me", "need help").status_code == 201
    first = p.generate()
    assert first.status_code == 200  # the stream had begun when the model failed
    events = ndjson(first.text)
    assert [e["type"] for e in events] == ["start", "delta", "delta", "error"]
    assert events[-1]["retry"] is True and "saved" in events[-1]["error"]
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert state["awaiting_answer"] and [m["role"] for m in state["messages"]] == ["user"]
    events = ndjson(p.generate().text)
    assert events[-1]["type"] == "done" and events[-1]["content"] == "A complete and careful answer."
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert [m["content"] for m in state["messages"] if m["role"] == "assistant"] == ["A complete and careful answer."]
