"""The admin cookie is bound to the CURRENT admin token: after THOUGHTTRACE_ADMIN_TOKEN is rotated, an
old cookie (same secret key, so its signature still verifies) must not open the admin pages."""

from __future__ import annotations

import dataclasses
from typing import Any

from collect_helpers import scripted_pool
from collect_helpers import study as make_study


def _client(settings: Any) -> Any:
    from fastapi.testclient import TestClient

    from thoughttrace.collect.app import create_app

    app = create_app(settings, make_study(), models=scripted_pool())
    return app, TestClient(app, base_url="http://testserver")


def test_a_cookie_from_before_a_token_rotation_is_refused(settings: Any) -> None:
    old_app, old = _client(settings)
    r = old.post("/admin/login", data={"token": settings.admin_token}, follow_redirects=False)
    assert r.status_code in (302, 303) and len(old.cookies) > 0
    cookie = dict(old.cookies)
    assert old.get("/admin", follow_redirects=False).status_code == 200

    rotated = dataclasses.replace(settings, admin_token="a-new-admin-token-after-rotation-987")
    new_app, new = _client(rotated)
    try:
        for k, v in cookie.items():
            new.cookies.set(k, v)
        r = new.get("/admin", follow_redirects=False)
        assert r.status_code in (302, 303, 401), "an admin cookie of the old token opened the admin page"
        assert new.get("/admin/export.jsonl", follow_redirects=False).status_code in (302, 303, 401)
        # the new token logs in as usual; the old token no longer does
        fresh = new.post("/admin/login", data={"token": "a-new-admin-token-after-rotation-987"}, follow_redirects=False)
        assert fresh.status_code in (302, 303)
        assert new.get("/admin", follow_redirects=False).status_code == 200
        assert new.post("/admin/login", data={"token": settings.admin_token}).status_code == 401
    finally:
        old_app.state.ctx.db.dispose()
        new_app.state.ctx.db.dispose()
