"""Fixtures for the platform: a fresh database per test on SQLite and on PostgreSQL, an app with
scripted models, and participant helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collect_helpers import fresh_pg_url, scripted_pool  # noqa: E402
from collect_helpers import study as make_study  # noqa: E402
from prolific_standin import TOKEN, ProlificStandIn  # noqa: E402

from thoughttrace.collect.settings import Settings  # noqa: E402
from thoughttrace.llm import Model  # noqa: E402


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.sqlite'}"
        return
    url, drop = fresh_pg_url(request.getfixturevalue("pg_url"))
    yield url
    drop()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(db_url=db_url, mode="test", admin_token="admin-token-for-tests-0123",
                    secret_key="secret-key-for-tests-0123456789")


@pytest.fixture
def app_maker(settings: Settings) -> Iterator[Callable[..., Any]]:
    """Build (TestClient factory, app, models); every client shares the app and database."""
    from fastapi.testclient import TestClient

    from thoughttrace.collect.app import create_app

    apps: list[Any] = []

    def make(models: dict[str, Model] | None = None, **study_overrides: Any) -> tuple[Any, Any, dict[str, Model]]:
        pool = models or scripted_pool()
        app = create_app(settings, make_study(**study_overrides), models=pool)
        apps.append(app)
        return (lambda: TestClient(app, base_url="http://testserver")), app, pool

    yield make
    for app in apps:
        app.state.ctx.db.dispose()


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProlificStandIn]:
    """A loopback Prolific stand-in, with the token and URL the client reads and no bonus caps set."""
    with ProlificStandIn() as s:
        monkeypatch.setenv("PROLIFIC_TOKEN", TOKEN)
        monkeypatch.setenv("PROLIFIC_API_URL", s.base)
        monkeypatch.delenv("PROLIFIC_BONUS_RUN_CAP", raising=False)
        monkeypatch.delenv("PROLIFIC_BONUS_STUDY_CAP", raising=False)
        yield s
