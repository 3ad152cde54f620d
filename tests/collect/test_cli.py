"""`thoughttrace serve` and `thoughttrace demo`: start-up checks, URLs, clear errors (no server is left running)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from collect_helpers import fresh_pg_url, write_study

from thoughttrace.cli.main import cli

#: random-looking secrets: production refuses low-entropy ones such as "t" * 24
TOKEN = "Zq3xV8pLm2Rk7TwY9bNc4Hd6"
KEY = "Jf5sW1gQ8vXe3Ku7Pa2Lr9Dm6Tb4Yc0N"


@pytest.fixture
def runner(monkeypatch):
    for var in ("THOUGHTTRACE_ADMIN_TOKEN", "THOUGHTTRACE_SECRET_KEY", "THOUGHTTRACE_MODE", "THOUGHTTRACE_STUDY",
                "THOUGHTTRACE_DB_URL"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_serve_refuses_missing_secrets_in_production(runner, tmp_path):
    r = runner.invoke(cli, ["serve", "--check", "--model", "scripted", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"])
    assert r.exit_code == 1 and "THOUGHTTRACE_ADMIN_TOKEN is missing" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["serve", "--check", "--model", "scripted", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"],
                      env={"THOUGHTTRACE_ADMIN_TOKEN": "changeme", "THOUGHTTRACE_SECRET_KEY": "s" * 32})
    assert r.exit_code == 1 and "THOUGHTTRACE_ADMIN_TOKEN" in r.output


def test_serve_check_with_secrets_prints_urls_but_not_the_token(runner, tmp_path):
    study = write_study(tmp_path / "study.yaml", name="mystudy")
    env = {"THOUGHTTRACE_ADMIN_TOKEN": TOKEN, "THOUGHTTRACE_SECRET_KEY": KEY}
    r = runner.invoke(cli, ["serve", "--check", "--study", str(study), "--db", f"sqlite:///{tmp_path / 's.sqlite'}",
                            "--port", "8123"], env=env)
    assert r.exit_code == 0, r.output
    assert "study 'mystudy'" in r.output and "http://127.0.0.1:8123/start" in r.output
    assert "/admin/login" in r.output and TOKEN not in r.output
    assert (tmp_path / "s.sqlite").exists()


def test_serve_reports_bad_study_and_workers_on_sqlite(runner, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: []\n")
    env = {"THOUGHTTRACE_ADMIN_TOKEN": TOKEN, "THOUGHTTRACE_SECRET_KEY": KEY}
    r = runner.invoke(cli, ["serve", "--check", "--study", str(bad)], env=env)
    assert r.exit_code == 1 and "models" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["serve", "--check", "--workers", "2", "--model", "scripted"], env=env)
    assert r.exit_code == 1 and "PostgreSQL" in r.output


def test_demo_check_prints_urls_and_a_generated_token(runner, tmp_path):
    r = runner.invoke(cli, ["demo", "--check", "--model", "scripted", "--db", f"sqlite:///{tmp_path / 'd.sqlite'}"])
    assert r.exit_code == 0, r.output
    assert "/start" in r.output and "admin token:" in r.output
    token = r.output.split("admin token:")[1].split()[0]
    assert len(token) >= 16


def test_demo_with_a_missing_model_fails_clearly(runner, tmp_path):
    r = runner.invoke(cli, ["demo", "--check", "--model", "local:/nonexistent/model.gguf",
                            "--db", f"sqlite:///{tmp_path / 'd.sqlite'}"])
    assert r.exit_code == 1 and "could not be loaded" in r.output and "--model scripted" in r.output
    assert "Traceback" not in r.output


@pytest.mark.postgres
def test_banner_hides_the_database_password(runner, pg_url):
    url, drop = fresh_pg_url(pg_url)
    try:
        r = runner.invoke(cli, ["demo", "--check", "--model", "scripted", "--db", url])
    finally:
        drop()
    assert r.exit_code == 0, r.output
    assert "***" in r.output and ":thoughttrace@" not in r.output


def test_help(runner):
    for cmd in ("serve", "demo"):
        r = runner.invoke(cli, [cmd, "--help"])
        assert r.exit_code == 0 and "--db" in r.output and "--port" in r.output
