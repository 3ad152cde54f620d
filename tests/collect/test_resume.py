"""A Prolific id is not a secret: another browser opening `/start?PROLIFIC_PID=<someone's id>` reads none of
their chat or notes; the owner resumes from their own device, with Prolific's SESSION_ID, or with the resume
code the study showed them."""

from __future__ import annotations

import re

from collect_helpers import Participant

CODE = re.compile(r'id="resume-code">Your resume code: <strong>([A-Z0-9-]+)</strong>')


def victim(client):
    p = Participant(client(), PROLIFIC_PID="victim01", STUDY_ID="st", SESSION_ID="sess-v")
    p.start()
    p.consent()
    p.quiz()
    p.task("Ask about my medical results")
    assert p.send("my blood test says X", "PRIVATE-REASON-42").status_code == 201
    page = p.get(f"/c/{p.cid}")
    m = CODE.search(page.text)
    assert m, "the chat page shows no resume code"
    return p, m.group(1)


def test_a_bare_prolific_id_opens_nothing(app_maker):
    client, _app, _ = app_maker()
    v, _code = victim(client)
    for query in ("PROLIFIC_PID=victim01", "PROLIFIC_PID=victim01&STUDY_ID=st",
                  "PROLIFIC_PID=victim01&STUDY_ID=st&SESSION_ID=guessed"):
        attacker = client()
        r = attacker.get(f"/start?{query}", follow_redirects=True)
        assert r.status_code == 403 and 'id="resume-needed"' in r.text, query
        assert "PRIVATE-REASON-42" not in r.text and "blood test" not in r.text
        assert "tt_participant" not in attacker.cookies  # no session was handed out
        for url in (f"/c/{v.cid}", f"/api/c/{v.cid}/state", "/next"):
            got = attacker.get(url, follow_redirects=True)
            assert got.status_code == 403 and "PRIVATE-REASON-42" not in got.text, url
    # a wrong code is refused, and guessing is throttled
    attacker = client()
    form = {"PROLIFIC_PID": "victim01", "STUDY_ID": "st", "SESSION_ID": "x", "resume_code": "AAAAA-AAAAA"}
    codes = [attacker.post("/resume", data=form).status_code for _ in range(6)]
    assert codes == [403] * 5 + [429]
    assert "tt_participant" not in attacker.cookies
    # the owner's own browser is unaffected
    assert "PRIVATE-REASON-42" in v.c.get(f"/api/c/{v.cid}/state").text


def test_the_owner_resumes_with_the_code_or_the_session_id(app_maker):
    client, _app, _ = app_maker()
    v, code = victim(client)
    # Prolific's SESSION_ID matching the stored one (the same submission's link on a new device)
    phone = client()
    r = phone.get("/start?PROLIFIC_PID=victim01&STUDY_ID=st&SESSION_ID=sess-v", follow_redirects=True)
    assert r.status_code == 200 and f"/c/{v.cid}" in str(r.url)
    # the resume code, typed as people type it (lower case, no dash)
    laptop = client()
    assert laptop.get("/start?PROLIFIC_PID=victim01&STUDY_ID=st&SESSION_ID=new-sess").status_code == 403
    r = laptop.post("/resume", data={"PROLIFIC_PID": "victim01", "STUDY_ID": "st", "SESSION_ID": "new-sess",
                                     "resume_code": code.replace("-", "").lower()}, follow_redirects=True)
    assert r.status_code == 200 and f"/c/{v.cid}" in str(r.url)
    assert "PRIVATE-REASON-42" in laptop.get(f"/api/c/{v.cid}/state").text
    # one code per participant: another participant's code does not open this one
    other = Participant(client(), PROLIFIC_PID="other02", STUDY_ID="st", SESSION_ID="so")
    other.start()
    other.consent()
    other.quiz()
    other_code = CODE.search(other.get("/task").text).group(1)
    assert other_code != code
    r = client().post("/resume", data={"PROLIFIC_PID": "victim01", "resume_code": other_code})
    assert r.status_code == 403
    # another site cannot post the form (no CSRF token exists before entry: the Origin is checked)
    r = client().post("/resume", data={"PROLIFIC_PID": "victim01", "resume_code": code},
                      headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "tt_participant" not in r.cookies
    r = client().post("/resume", data={"PROLIFIC_PID": "victim01", "resume_code": code},
                      headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303
