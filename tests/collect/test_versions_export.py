"""Versioned study configurations (a removed model never breaks its participants; consent versions are
recorded), withdrawal keeps `completed`, and the dataset bundle stands alone (participants with screening
answers, design, codebook that documents every field)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from click.testing import CliRunner
from collect_helpers import Participant, ndjson
from sqlalchemy import select

from thoughttrace.cli.main import cli
from thoughttrace.collect.app import create_app
from thoughttrace.collect.db import Participant as ParticipantModel
from thoughttrace.collect.study import parse_study
from thoughttrace.llm import get_model

ADMIN = {"Authorization": "Bearer admin-token-for-tests-0123"}
SCREENING = [{"id": "uses_ai", "type": "single", "question": "Do you use AI assistants?", "options": ["Yes", "No"],
              "screen_out_if": ["No"]}]


def _config(models: list[str], consent: str) -> dict[str, Any]:
    return {"name": "versions", "tasks_per_participant": 2, "texts": {"consent": consent},
            "models": [{"key": k, "spec": "scripted", "options": {"default": f"ANSWER-FROM-{k.upper()}"}}
                       for k in models]}


def _app(settings: Any, config: dict[str, Any], pool_keys: list[str]) -> Any:
    pool = {k: get_model("scripted", cache=False, default=f"ANSWER-FROM-{k.upper()}") for k in pool_keys}
    return create_app(settings, parse_study(config), models=pool)


def _client(app: Any) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://testserver")


def test_removing_a_model_mid_study_keeps_its_participants_chatting(settings):
    v1 = _app(settings, _config(["alpha", "beta"], "CONSENT-TEXT-ONE"), ["alpha", "beta"])
    p = Participant(_client(v1))
    p.start()
    p.consent()
    p.quiz()
    p.task("first")  # design row 0: alpha, then beta
    p.turn("hi", "because", "fine")
    p.finish()
    p.summary()
    p.task("second")  # now chatting with beta
    waiting = Participant(_client(v1))  # entered under version 1, not consented yet
    waiting.start()
    v1.state.ctx.db.dispose()

    # the researcher removes beta and rewrites the consent text; the server restarts with the new file
    v2 = _app(settings, _config(["alpha"], "CONSENT-TEXT-TWO"), ["alpha"])
    assert v2.state.ctx.versions.current_id == 2
    for who in (p, waiting):  # the same browsers (signed cookies), now talking to the new server
        moved = _client(v2)
        moved.cookies.update(who.c.cookies)
        who.c = moved
    assert p.send("still there?", "checking").status_code == 201
    g = p.generate()
    assert g.status_code == 200, g.text
    assert ndjson(g.text)[-1]["content"] == "ANSWER-FROM-BETA"  # their chat goes on with beta
    done = ndjson(g.text)[-1]
    assert p.react(done["message_id"], "ok").status_code == 201
    p.finish()
    p.summary()
    assert p.survey().url.path == "/done"
    # the participant who entered under version 1 reads version 1's consent text
    assert "CONSENT-TEXT-ONE" in waiting.get("/consent").text
    waiting.form("/consent", {"agree": "yes"})
    newcomer = Participant(_client(v2))
    newcomer.start()
    assert "CONSENT-TEXT-TWO" in newcomer.get("/consent").text
    newcomer.form("/consent", {"agree": "yes"})
    newcomer.quiz()
    newcomer.task("x")
    newcomer.send("hello", "why not")
    assert ndjson(newcomer.generate().text)[-1]["content"] == "ANSWER-FROM-ALPHA"  # beta is not assigned any more
    with v2.state.ctx.db.session() as s:
        rows = {r.id: r for r in s.scalars(select(ParticipantModel))}
    import hashlib

    one, two = (hashlib.sha256(t.encode()).hexdigest() for t in ("CONSENT-TEXT-ONE", "CONSENT-TEXT-TWO"))
    assert [(r.study_version, r.consent_version, r.consent_hash) for r in rows.values()] == [
        (1, 1, one), (1, 1, one), (2, 2, two)]
    bundle = _bundle(_client(v2))
    people = [json.loads(x) for x in bundle["participants.jsonl"].splitlines()]
    assert [(x["study_version"], x["consent_hash"]) for x in people] == [(1, one), (1, one), (2, two)]
    assert people[0]["model_order"] == ["alpha", "beta"] and people[2]["model_order"] == ["alpha", "alpha"]
    book = json.loads(bundle["codebook.json"])
    assert [v["version"] for v in book["versions"]] == [1, 2] and book["current_version"] == 2
    assert len(book["designs"]) == 2  # each version's design, with its rows and rule
    v2.state.ctx.db.dispose()


def _bundle(client: Any, query: str = "") -> dict[str, str]:
    r = client.get(f"/admin/export.zip{query}", headers=ADMIN)
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        return {n: z.read(n).decode() for n in z.namelist()}


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Every field path in a record, lists written as [] (messages[].reasons[].content)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            name = f"{prefix}.{k}" if prefix else k
            out.add(name)
            if k not in ("survey", "screening", "quality_flags", "survey_answers"):
                out |= _paths(v, name)
    elif isinstance(value, list):
        for v in value:
            out |= _paths(v, f"{prefix}[]")
    return out


def test_bundle_with_screening_answers_and_a_codebook_of_every_field(app_maker, tmp_path, settings):
    client, app, _ = app_maker(screening=SCREENING, prolific_completion_code="DONE1")
    done = Participant(client(), PROLIFIC_PID="p1", STUDY_ID="s", SESSION_ID="a")
    done.start()
    done.consent()
    done.form("/screening", {"uses_ai": "Yes"})
    done.quiz()
    for t in range(2):
        done.task(f"task {t}")
        done.turn("hi", "because", "fine")
        done.finish()
        done.summary()
    done.survey()
    out = Participant(client())
    out.start()
    out.consent()
    out.form("/screening", {"uses_ai": "No"})
    files = _bundle(client())
    assert set(files) == {"conversations.jsonl", "participants.jsonl", "design.json", "codebook.json",
                          "codebook.md", "manifest.json"}
    people = [json.loads(x) for x in files["participants.jsonl"].splitlines()]
    assert [x["screening"] for x in people] == [{"uses_ai": "Yes"}, {"uses_ai": "No"}]  # screening answers exported
    assert [x["stage"] for x in people] == ["done", "screened_out"] and people[0]["completed"] is True
    assert "prolific_pid" not in people[0]
    convs = [json.loads(x) for x in files["conversations.jsonl"].splitlines()]
    book = json.loads(files["codebook.json"])
    documented = {f["name"] for f in book["files"]["conversations.jsonl"]}
    seen = set().union(*(_paths(c) for c in convs))
    assert seen - documented == set(), seen - documented  # every exported field is in the codebook
    documented_p = {f["name"] for f in book["files"]["participants.jsonl"]}
    assert set().union(*(_paths(x) for x in people)) - documented_p == set()
    item = book["items"]["1"]["screening"][0]
    assert item == {"id": "uses_ai", "question": "Do you use AI assistants?", "item_type": "single", "type": "string",
                    "allowed": ["Yes", "No"], "required": True, "attention_check": None, "screen_out_if": ["No"]}
    assert {i["id"] for i in book["items"]["1"]["survey"]} >= {"age", "gender", "purposes"}
    design = next(iter(book["designs"].values()))
    assert design["model_rule"].startswith("williams") and len(design["rows"]) == 2
    assert people[0]["design_row"] in (0, 1) and people[0]["design_id"] == design["design_id"]
    assert [f["allowed"] for f in book["files"]["conversations.jsonl"] if f["name"] == "messages[].type"] == [
        ["user", "assistant"]]
    md = files["codebook.md"]
    for needle in ("| `messages[].reasons[].content` |", "uses_ai", "## Design", "alpha > beta", "| `completed` |"):
        assert needle in md, needle
    assert json.loads(files["manifest.json"])["participants"] == 2
    # the same bundle from the command line, written to a directory
    r = CliRunner().invoke(cli, ["study", "export", str(tmp_path / "ds"), "--db", settings.db_url])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ds" / "codebook.json").read_text())["files"] == book["files"]
    assert (tmp_path / "ds" / "participants.jsonl").read_text() == files["participants.jsonl"]


def test_withdrawal_keeps_completed_for_who_finished(app_maker):
    client, app, _ = app_maker(prolific_completion_code="DONE1")
    p = Participant(client(), PROLIFIC_PID="fin", STUDY_ID="s", SESSION_ID="x")
    p.full_journey(turns=1, tasks=2)
    q = Participant(client(), PROLIFIC_PID="mid", STUDY_ID="s", SESSION_ID="y")
    q.start()
    admin = client()
    for who in ("fin", "mid"):
        pid = next(r.public_id for r in _rows(app) if r.prolific_pid == who)
        assert admin.post(f"/admin/participants/{pid}/withdraw", headers=ADMIN, json={"confirm": "yes"}).status_code == 200
    pay = admin.get("/admin/payments.csv", headers=ADMIN).text.splitlines()
    header = pay[0].split(",")
    rows = {r.split(",")[0]: dict(zip(header, r.split(","), strict=True)) for r in pay[1:]}
    assert (rows["fin"]["completed"], rows["fin"]["withdrawn"]) == ("1", "1")  # did the work: still completed
    assert (rows["mid"]["completed"], rows["mid"]["withdrawn"]) == ("0", "1")
    people = {x["user"]: x for x in map(json.loads, _bundle(admin)["participants.jsonl"].splitlines())}
    assert [(x["completed"], x["withdrawn"], x["withdrawn_from_stage"]) for x in people.values()] == [
        (True, True, "done"), (False, True, "consent")]


def _rows(app: Any) -> list[Any]:
    with app.state.ctx.db.session() as s:
        return list(s.scalars(select(ParticipantModel).order_by(ParticipantModel.id)))

