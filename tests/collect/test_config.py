"""Study config and settings validation, migrations, rendering and text checks (no web server needed)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from thoughttrace.collect import flow
from thoughttrace.collect.db import Database
from thoughttrace.collect.migrate import current_revision, upgrade
from thoughttrace.collect.render import render_markdown
from thoughttrace.collect.settings import Settings, SettingsError
from thoughttrace.collect.study import (
    StudyConfigError,
    demo_study,
    load_study,
    parse_study,
    with_single_model,
)

MIN = {"models": [{"key": "m", "spec": "scripted"}]}


def test_demo_study_is_valid_and_uses_the_local_model():
    s = demo_study()
    assert s.models[0].spec == "local" and s.tasks_per_participant == 2 and s.quiz


def test_yaml_and_toml_configs(tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("models:\n  - {key: a, spec: scripted, system_prompt: Be brief.}\ntimer_minutes: 3\n")
    assert load_study(y).timer_minutes == 3
    t = tmp_path / "s.toml"
    t.write_text('tasks_per_participant = 1\n[[models]]\nkey = "a"\nspec = "openai/gpt-4o"\ntemperature = 0.2\n')
    s = load_study(t)
    assert s.models[0].temperature == 0.2 and s.tasks_per_participant == 1


@pytest.mark.parametrize("data,needle", [
    ({}, "models: Field required"),
    ({"models": []}, "models: List should have at least 1 item"),
    ({**MIN, "timer_minutes": 0}, "timer_minutes"),
    ({**MIN, "tmer_minutes": 5}, "tmer_minutes: unknown field"),
    ({"models": [{"key": "a", "spec": "x"}, {"key": "a", "spec": "y"}]}, "appears twice"),
    ({**MIN, "quiz": [{"question": "q", "options": ["a", "b"], "answer": 2}]}, "not an option index"),
    ({**MIN, "labels": "sometimes"}, "labels"),
    ({**MIN, "prolific_completion_code": "bad code!"}, "prolific_completion_code"),
    ({"models": [{"key": "has space", "spec": "x"}]}, "models.0.key"),
])
def test_bad_configs_name_the_field(data, needle):
    with pytest.raises(StudyConfigError) as e:
        parse_study(data, "my.yaml")
    assert needle in str(e.value) and str(e.value).startswith("my.yaml")


def test_unparseable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(StudyConfigError, match="cannot parse"):
        load_study(bad)
    with pytest.raises(StudyConfigError, match="not found"):
        load_study(tmp_path / "none.yaml")
    other = tmp_path / "s.json"
    other.write_text("{}")
    with pytest.raises(StudyConfigError, match=".yaml, .yml or .toml"):
        load_study(other)


def test_single_model_override_keeps_the_rest():
    s = with_single_model(demo_study(), "openai-compatible/my model")
    assert [m.spec for m in s.models] == ["openai-compatible/my model"] and s.models[0].key == "openai-compatible-my-model"
    assert s.timer_minutes == demo_study().timer_minutes


def test_production_refuses_default_or_missing_secrets():
    with pytest.raises(SettingsError, match="THOUGHTTRACE_ADMIN_TOKEN"):
        Settings(mode="production").checked()
    token, key = "Zq3xV8pLm2Rk7TwY9bNc4Hd6", "Jf5sW1gQ8vXe3Ku7Pa2Lr9Dm6Tb4Yc0N"
    with pytest.raises(SettingsError, match="THOUGHTTRACE_SECRET_KEY"):
        Settings(mode="production", admin_token=token, secret_key="changeme").checked()
    with pytest.raises(SettingsError, match="must differ"):
        Settings(mode="production", admin_token=token, secret_key=token).checked()
    ok = Settings(mode="production", admin_token=token, secret_key=key).checked()
    assert ok.admin_token == token
    demo = Settings(mode="demo").checked()
    assert len(demo.admin_token) >= 16 and len(demo.secret_key) >= 16 and demo.admin_token != demo.secret_key


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("THOUGHTTRACE_MODE", "nonsense")
    with pytest.raises(SettingsError, match="THOUGHTTRACE_MODE"):
        Settings.from_env()
    monkeypatch.setenv("THOUGHTTRACE_MODE", "demo")
    monkeypatch.setenv("THOUGHTTRACE_DB_URL", "sqlite:///x.sqlite")
    assert Settings.from_env(db_url=None).db_url == "sqlite:///x.sqlite"
    assert Settings.from_env(db_url="sqlite:///y.sqlite").db_url == "sqlite:///y.sqlite"


def test_migrations_build_the_models_schema_and_are_idempotent(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from thoughttrace.collect.db import Base

    db = Database(db_url)
    upgrade(db.engine)
    upgrade(db.engine)  # a restart runs it again: no-op
    from alembic.script import ScriptDirectory

    from thoughttrace.collect.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"the migrations branch: {heads}"  # one chain, one head
    assert current_revision(db.engine) == heads[0]
    assert {"participants", "conversations", "messages", "thoughts", "events", "admin_actions"} <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    if db_url.startswith("sqlite"):
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    db.dispose()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


MD_PIECES = st.sampled_from(["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[a](javascript:alert(1))",
                             "<a href='javascript:x'>y</a>", "**b**", "`c`", "\n\n", "- item\n", "<iframe>", "> q\n",
                             "| a | b |\n|---|---|\n| 1 | 2 |\n", "[ok](https://example.org)", "<div onclick=x>"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(MD_PIECES, st.text(max_size=20)), max_size=12))
def test_rendered_markdown_never_carries_active_markup(pieces):
    from thoughttrace.collect.render import ALLOWED_TAGS

    parser = _Tags()
    parser.feed(render_markdown("".join(pieces)))
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS
        for name, value in attrs:
            assert not name.startswith("on")
            if name == "href":
                assert (value or "").split(":")[0].lower() in ("http", "https", "mailto") or ":" not in (value or "")


@given(st.text(max_size=50), st.integers(min_value=1, max_value=40))
def test_clean_text_either_accepts_stripped_text_or_raises_flow_error(value, limit):
    try:
        out = flow.clean_text(value, "x", limit)
    except flow.FlowError as e:
        assert e.status in (413, 422)
        stripped = value.replace("\r\n", "\n").strip()
        assert not stripped or len(stripped) > limit or "\x00" in stripped
    else:
        assert out == value.replace("\r\n", "\n").strip() and 0 < len(out) <= limit


@given(st.text(max_size=80))
def test_client_keys_and_external_ids(value):
    import re

    ok = bool(re.fullmatch(r"[A-Za-z0-9_\-]{8,64}", value))
    try:
        flow.check_client_key(value)
        assert ok
    except flow.FlowError:
        assert not ok
