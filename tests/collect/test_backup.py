"""Backups that restore: `thoughttrace db backup|restore|verify` on SQLite and PostgreSQL, and the drill
(participants keep chatting over HTTP while the backup runs; the restored export is the live export of
the backup's moment, row for row)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from collect_helpers import (
    Participant,
    free_port,
    fresh_pg_url,
    scripted_pool,
    start_server,
    stop_server,
    write_study,
)
from collect_helpers import study as make_study
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from thoughttrace.cli.main import cli
from thoughttrace.collect import backup as backup_mod
from thoughttrace.collect.backup import BackupError, manifest_path, snapshot
from thoughttrace.collect.db import Database
from thoughttrace.collect.export import iter_export
from thoughttrace.collect.settings import Settings


def export_of(url: str) -> list[dict[str, Any]]:
    db = Database(url)
    try:
        with db.session() as s:
            return list(iter_export(s, include_prolific=True))
    finally:
        db.dispose()


def fresh_target(db_url: str, tmp_path: Path, pg_url_getter: Any) -> tuple[str, Any]:
    """An empty database to restore into: a new SQLite file, or a new PostgreSQL database (dropped after)."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'restored.sqlite'}", lambda: None
    base = make_url(pg_url_getter())
    name = "tt_restore_" + secrets.token_hex(5)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_backup_restore_verify_roundtrip_by_cli(app_maker, db_url, tmp_path, request):
    make_client, app, _ = app_maker()
    for i in range(3):
        Participant(make_client(), PROLIFIC_PID=f"pid{i}", STUDY_ID="s", SESSION_ID=f"x{i}").full_journey(turns=1)
    out = tmp_path / ("backup.dump" if db_url.startswith("postgresql") else "backup.sqlite")
    r = run_cli("db", "backup", str(out), "--db", db_url, "--json")
    assert r.exit_code == 0, r.output
    manifest = json.loads(r.output)
    assert manifest["format_version"] == 1 and manifest["engine"] in ("sqlite", "postgresql")
    assert manifest["counts"]["participants"] == 3 and manifest["counts"]["thoughts"] == 12
    assert manifest["counts"]["messages"] == 12 and manifest["schema_revision"]
    assert manifest["study_version"].startswith("thoughttrace-demo@") or "@" in manifest["study_version"]
    assert json.loads(manifest_path(out).read_text()) == manifest

    server = request.getfixturevalue("pg_url") if db_url.startswith("postgresql") else None
    args = ["--db", server] if server else []
    r = run_cli("db", "verify", str(out), *args)
    assert r.exit_code == 0 and r.output.startswith("OK"), r.output

    target, drop = fresh_target(db_url, tmp_path, lambda: request.getfixturevalue("pg_url"))
    try:
        r = run_cli("db", "restore", str(out), "--db", target)
        assert r.exit_code == 0, r.output
        assert export_of(target) == export_of(db_url)
        # a second restore into the same (now full) database is refused, not merged
        r = CliRunner().invoke(cli, ["db", "restore", str(out), "--db", target])
        assert r.exit_code == 1 and "never overwrites" in r.output and "Traceback" not in r.output
    finally:
        drop()


def sqlite_app(tmp_path: Path) -> tuple[Any, str]:
    """(TestClient factory, URL) of an app on a new SQLite file: for the engine-independent checks."""
    from fastapi.testclient import TestClient

    from thoughttrace.collect.app import create_app

    url = f"sqlite:///{tmp_path / 'live.sqlite'}"
    app = create_app(Settings(db_url=url, mode="test"), make_study(), models=scripted_pool())
    return (lambda: TestClient(app)), url


def test_a_damaged_or_incomplete_backup_fails_verify(tmp_path, monkeypatch):
    """Bytes changed -> sha256 refusal; a restore that loses a table's rows -> verify names the table."""
    make_client, url = sqlite_app(tmp_path)
    Participant(make_client(), PROLIFIC_PID="pidA", STUDY_ID="s", SESSION_ID="a").full_journey(turns=1)
    out = tmp_path / "b.sqlite"
    backup_mod.backup(url, out)

    real_restore = backup_mod._sqlite_restore

    def restore_skipping_thoughts(dump: Path, target: Path) -> None:
        real_restore(dump, target)
        import sqlite3

        with sqlite3.connect(target) as c:
            c.execute("DELETE FROM thoughts")

    monkeypatch.setattr(backup_mod, "_sqlite_restore", restore_skipping_thoughts)
    r = CliRunner().invoke(cli, ["db", "verify", str(out)])
    assert r.exit_code == 1 and "table thoughts: 0 rows restored, 4 in the backup" in r.output, r.output
    monkeypatch.setattr(backup_mod, "_sqlite_restore", real_restore)
    assert CliRunner().invoke(cli, ["db", "verify", str(out)]).exit_code == 0

    data = bytearray(out.read_bytes())
    data[-100] ^= 0xFF
    out.write_bytes(bytes(data))
    r = CliRunner().invoke(cli, ["db", "verify", str(out)])
    assert r.exit_code == 1 and "does not match its manifest" in r.output and "Traceback" not in r.output


def test_bad_input_is_one_clear_line(tmp_path):
    r = CliRunner().invoke(cli, ["db", "verify", str(tmp_path / "missing.dump")])
    assert r.exit_code == 1 and "no backup file" in r.output
    r = CliRunner().invoke(cli, ["db", "backup", str(tmp_path / "o"), "--db", f"sqlite:///{tmp_path / 'none.sqlite'}"])
    assert r.exit_code == 1 and "no SQLite database" in r.output
    live = tmp_path / "live.sqlite"
    live.write_bytes(b"")
    r = CliRunner().invoke(cli, ["db", "backup", str(live), "--db", f"sqlite:///{live}"])
    assert r.exit_code == 1 and "is the live database itself" in r.output
    r = CliRunner().invoke(cli, ["db", "backup", str(tmp_path / "o"), "--db", "mysql://x/y"])
    assert r.exit_code == 1 and "backups support" in r.output


class Chatter(threading.Thread):
    """A participant who keeps chatting over real HTTP until told to stop (message+reason, answer, reaction)."""

    def __init__(self, base: str, i: int) -> None:
        super().__init__(daemon=True)
        self.p = Participant(httpx.Client(base_url=base, timeout=30), PROLIFIC_PID=f"drill{i}", STUDY_ID="s",
                             SESSION_ID=f"d{i}")
        self.i = i
        self.stop = threading.Event()
        self.turns = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.p.start()
            self.p.consent()
            self.p.quiz()
            self.p.task(f"drill task {self.i}")
            while not self.stop.is_set():
                self.p.turn(f"m{self.turns}", f"reason {self.i}.{self.turns}", f"reaction {self.i}.{self.turns}")
                self.turns += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_backup_drill_while_participants_chat(db_url, tmp_path, request):
    """The backup's restore equals the live export of the backup's moment, taken while writes go on."""
    study = write_study(tmp_path / "study.yaml", name="drill")
    port = free_port()
    proc = start_server(db_url, study, port)
    chatters = [Chatter(f"http://127.0.0.1:{port}", i) for i in range(3)]
    target, drop = fresh_target(db_url, tmp_path, lambda: request.getfixturevalue("pg_url"))
    try:
        for ch in chatters:
            ch.start()
        deadline = time.monotonic() + 30
        while sum(ch.turns for ch in chatters) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        out = tmp_path / "drill.dump"
        with snapshot(db_url) as snap:
            live_then = list(iter_export(Session(bind=snap.connection), include_prolific=True))
            turns_then = sum(ch.turns for ch in chatters)
            manifest = backup_mod.backup(db_url, out, at=snap)
            # keep the moment open while the participants go on writing: the copy must not see it
            while sum(ch.turns for ch in chatters) < turns_then + 3 and time.monotonic() < deadline + 30:
                time.sleep(0.05)
        for ch in chatters:
            ch.stop.set()
        for ch in chatters:
            ch.join(30)
            assert ch.error is None, repr(ch.error)
        backup_mod.restore(out, target)
        restored = export_of(target)
        live_now = export_of(db_url)
        assert restored == live_then  # the moment, row for row: no torn conversation, no later note
        assert live_now != live_then  # the chatting really went on during and after the backup
        n_then = sum(len(m.get("reasons") or []) + len(m.get("reactions") or []) for cv in live_then
                     for m in cv["messages"])
        assert manifest["counts"]["thoughts"] == n_then > 0
    finally:
        for ch in chatters:
            ch.stop.set()
        stop_server(proc)
        drop()


def test_restore_refuses_another_engines_backup(tmp_path):
    make_client, url = sqlite_app(tmp_path)
    Participant(make_client(), PROLIFIC_PID="e1").start()
    out = tmp_path / "e.sqlite"
    backup_mod.backup(url, out)
    with pytest.raises(BackupError, match="this is a sqlite backup"):
        backup_mod.restore(out, "postgresql+psycopg://u:p@127.0.0.1:1/x")


@pytest.mark.postgres
def test_pg_restore_into_the_same_database_is_refused(request, tmp_path):
    """A dump of schema A never lands beside the live schema A of the same database."""
    pg = request.getfixturevalue("pg_url")
    src, drop_src = fresh_pg_url(pg)
    dst, drop_dst = fresh_pg_url(pg)
    try:
        db = Database(src)
        from thoughttrace.collect.migrate import upgrade

        upgrade(db.engine)
        db.dispose()
        out = tmp_path / "a.dump"
        backup_mod.backup(src, out)
        with pytest.raises(BackupError, match="already has a schema"):
            backup_mod.restore(out, dst)  # the same database still holds schema A
    finally:
        drop_src()
        drop_dst()


pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning")]


@pytest.mark.postgres
def test_pg_backup_of_a_whole_database_restores_into_a_new_one(request, tmp_path):
    """The production path: the study in `public` of its own database, restored into a new database."""
    pg = lambda: request.getfixturevalue("pg_url")  # noqa: E731
    src, drop_src = fresh_target("postgresql", tmp_path, pg)
    dst, drop_dst = fresh_target("postgresql", tmp_path, pg)
    try:
        from fastapi.testclient import TestClient

        from thoughttrace.collect.app import create_app

        app = create_app(Settings(db_url=src, mode="test"), make_study(), models=scripted_pool())
        Participant(TestClient(app), PROLIFIC_PID="pub1", STUDY_ID="s", SESSION_ID="a").full_journey(turns=1)
        app.state.ctx.db.dispose()
        out = tmp_path / "whole.dump"
        manifest = backup_mod.backup(src, out)
        assert manifest["pg_schema"] == "public"
        backup_mod.restore(out, dst)
        assert export_of(dst) == export_of(src) != []
    finally:
        drop_src()
        drop_dst()
