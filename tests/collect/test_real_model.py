"""One chat turn through the platform with the real embedded model (llama.cpp, SmolLM2-135M)."""

from __future__ import annotations

import pytest
from collect_helpers import Participant, ndjson

from thoughttrace.llm import get_model

pytestmark = pytest.mark.model


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_turn_with_the_real_local_model(app_maker):
    model = get_model("local:smollm2", cache=False)
    client, _app, _ = app_maker(models={"alpha": model, "beta": model}, model_timeout_seconds=120)
    p = Participant(client())
    p.start()
    p.consent()
    p.quiz()
    p.task("Learn a fact about the sea")
    assert p.send("Name one ocean.", "I want a short fact").status_code == 201
    r = p.generate()
    assert r.status_code == 200, r.text
    done = ndjson(r.text)[-1]
    assert done["type"] == "done" and done["content"].strip()
    assert p.react(done["message_id"], "short and fine").status_code == 201
    state = p.c.get(f"/api/c/{p.cid}/state").json()
    assert [m["role"] for m in state["messages"]] == ["user", "assistant"]
    assert model.usage.report().calls == 1
