"""Back up, restore and verify a study database, on SQLite and on PostgreSQL, while the study runs.

A backup is two files: the dump (`OUT`) and its manifest (`OUT.manifest.json`: format version, engine,
study version, schema revision, the row count of every table, size and sha256 of the dump). Both
engines copy ONE consistent moment without stopping the server:

- SQLite: the online backup API (`sqlite3.Connection.backup`) from a connection holding a read
  transaction; in WAL mode writers go on while it copies, and the copy is the moment the read began;
- PostgreSQL: `pg_dump` in custom format with `--snapshot` of a REPEATABLE READ transaction that also
  counts the rows, so the manifest's counts are exactly what the dump holds.

`restore` refuses a dump whose sha256 does not match its manifest and a target that already holds
tables (a restore never overwrites a study), and checks the restored counts against the manifest.
`verify` restores into a scratch database (a temporary file; on PostgreSQL a scratch database created
and dropped on the same server) and compares every table's count: a backup nobody restored is a hope.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool

BACKUP_FORMAT_VERSION = 1
MANIFEST_KIND = "thoughttrace-db-backup"
#: tables that are bookkeeping, not study data (their content is checked as the schema revision)
_NOT_COUNTED = frozenset({"alembic_version"})


class BackupError(ValueError):
    """A backup, restore or verification that cannot go on; the message says what to do."""


@dataclass
class Snapshot:
    """One consistent moment of a database: `connection` reads it; a backup taken `at=` it copies it."""

    engine: str
    connection: Connection
    #: PostgreSQL: the exported snapshot id for `pg_dump --snapshot`
    pg_snapshot: str | None = None


@dataclass
class VerifyReport:
    ok: bool
    manifest: dict[str, Any]
    restored_counts: dict[str, int]
    problems: list[str]
    restore_seconds: float


def manifest_path(dump: Path) -> Path:
    return dump.with_name(dump.name + ".manifest.json")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def engine_of(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise BackupError(f"backups support sqlite:///FILE and postgresql+psycopg://... URLs, not {url.split(':')[0]!r}")


# ----------------------------------------------------------------------------------------------- reading
def table_counts(c: Connection) -> dict[str, int]:
    """Rows of every table of the study's schema (all of them: a table a restore skipped shows as missing)."""
    names = sorted(n for n in inspect(c).get_table_names() if n not in _NOT_COUNTED)
    quote = c.dialect.identifier_preparer.quote
    return {n: int(c.execute(text(f"SELECT count(*) FROM {quote(n)}")).scalar_one()) for n in names}


def schema_revision(c: Connection) -> str | None:
    if "alembic_version" not in inspect(c).get_table_names():
        return None
    return c.execute(text("SELECT version_num FROM alembic_version")).scalar()


def stored_study_versions(c: Connection) -> list[str]:
    """`NAME@HASH12` of every study configuration the database has served (table `study_versions`)."""
    if "study_versions" not in inspect(c).get_table_names():
        return []
    rows = c.execute(text("SELECT config, content_hash FROM study_versions ORDER BY id")).all()
    out = []
    for config, digest in rows:
        cfg = json.loads(config) if isinstance(config, str) else (config or {})
        out.append(f"{cfg.get('name', '?')}@{str(digest)[:12]}")
    return out


def _sqlite_path(url: str) -> Path:
    db = make_url(url).database
    if not db or db == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored; use sqlite:///FILE")
    return Path(db)


def _plain_engine(url: str) -> Engine:
    """An engine without the app's pool or pragmas; SQLite transactions are plain deferred BEGINs (a
    read transaction that does not block writers)."""
    if engine_of(url) == "postgresql":
        return create_engine(url, poolclass=NullPool)
    if not _sqlite_path(url).exists():
        raise BackupError(f"no SQLite database at {_sqlite_path(url)}; check the --db path")
    eng = create_engine(url, poolclass=NullPool)

    @event.listens_for(eng, "connect")
    def _autocommit(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(eng, "begin")
    def _begin(conn: Any) -> None:
        conn.connection.dbapi_connection.execute("BEGIN")

    return eng


@contextlib.contextmanager
def snapshot(url: str) -> Iterator[Snapshot]:
    """Hold one consistent moment of the database open (writers go on); read it through `.connection`
    and pass it to `backup(..., at=...)` to copy that same moment (the drill test exports both)."""
    kind = engine_of(url)
    eng = _plain_engine(url)
    try:
        with eng.connect() as c:
            if kind == "postgresql":
                c = c.execution_options(isolation_level="REPEATABLE READ")
            with c.begin():
                snap = Snapshot(kind, c)
                if kind == "postgresql":
                    snap.pg_snapshot = c.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                else:
                    c.execute(text("SELECT count(*) FROM sqlite_master")).scalar()  # the read begins here
                yield snap
    finally:
        eng.dispose()


# ------------------------------------------------------------------------------------------------ backup
def backup(url: str, out: Path, *, study_version: str | None = None, at: Snapshot | None = None) -> dict[str, Any]:
    """Copy the database to `out` and write its manifest beside it; returns the manifest.

    The dump is written to a temporary name and renamed at the end, so a crash never leaves a file that
    looks like a finished backup."""
    from thoughttrace import __version__

    kind = engine_of(url)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "sqlite" and out.resolve() == _sqlite_path(url).resolve():
        raise BackupError(f"{out} is the live database itself; write the backup to another file")
    partial = out.with_name(out.name + ".partial")
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        snap = at if at is not None else stack.enter_context(snapshot(url))
        counts = table_counts(snap.connection)
        if "participants" not in counts:
            raise BackupError("this database holds no study (no participants table); check the --db URL")
        revision = schema_revision(snap.connection)
        extra: dict[str, Any] = {"stored_study_versions": stored_study_versions(snap.connection)}
        if kind == "sqlite":
            _sqlite_copy(snap.connection.connection.dbapi_connection, partial)
        else:
            schema = snap.connection.execute(text("SELECT current_schema()")).scalar_one()
            _run_pg_tool("pg_dump", make_url(url), ["--format=custom", "--no-owner", "--no-acl", f"--schema={schema}",
                                                    f"--snapshot={snap.pg_snapshot}", f"--file={partial}"])
            extra["pg_schema"] = schema
    os.replace(partial, out)
    manifest: dict[str, Any] = {
        "format_version": BACKUP_FORMAT_VERSION, "kind": MANIFEST_KIND, "engine": kind, "file": out.name,
        "size_bytes": out.stat().st_size, "sha256": sha256_of(out),
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "thoughttrace_version": __version__,
        "schema_revision": revision, "study_version": study_version, "counts": counts,
        "backup_seconds": round(time.perf_counter() - t0, 3), **extra,
    }
    manifest_path(out).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _sqlite_copy(source: Any, dest: Path) -> None:
    """The online backup API, all pages in one step inside the source's read transaction; the copy is
    then made a self-contained single file (rollback journal, not WAL)."""
    dest.unlink(missing_ok=True)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()


# ----------------------------------------------------------------------------------------------- restore
def read_manifest(dump: Path) -> dict[str, Any]:
    """The manifest beside `dump`, checked for kind and format version; and the dump against its sha256."""
    dump = Path(dump)
    mpath = manifest_path(dump)
    if not dump.is_file():
        raise BackupError(f"no backup file at {dump}")
    if not mpath.is_file():
        raise BackupError(f"no manifest {mpath.name} beside {dump.name}; a backup is the dump plus its manifest")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BackupError(f"{mpath} is not valid JSON ({exc}); the backup is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise BackupError(f"{mpath} is not a ThoughtTrace backup manifest")
    if manifest.get("format_version") != BACKUP_FORMAT_VERSION:
        raise BackupError(f"{mpath} has backup format {manifest.get('format_version')}; this version reads "
                          f"{BACKUP_FORMAT_VERSION}: restore it with the thoughttrace version that wrote it "
                          f"({manifest.get('thoughttrace_version')})")
    digest = sha256_of(dump)
    if digest != manifest.get("sha256"):
        raise BackupError(f"{dump.name} does not match its manifest (sha256 {digest[:12]}... instead of "
                          f"{str(manifest.get('sha256'))[:12]}...): the file is damaged or not this backup's")
    return manifest


def restore(dump: Path, url: str) -> dict[str, Any]:
    """Restore `dump` into the EMPTY database `url`; returns the restored counts (checked against the
    manifest: a difference raises)."""
    manifest = read_manifest(dump)
    kind = engine_of(url)
    if kind != manifest["engine"]:
        raise BackupError(f"this is a {manifest['engine']} backup; restore it into a {manifest['engine']} database "
                          f"(to move engines, restore it, then `thoughttrace data export` / re-import)")
    if kind == "sqlite":
        _sqlite_restore(Path(dump), _sqlite_path(url))
    else:
        _pg_restore(Path(dump), url, manifest.get("pg_schema") or "public")
    eng = _plain_engine(url)
    try:
        with eng.connect() as c:
            counts = table_counts(c)
    finally:
        eng.dispose()
    problems = compare_counts(manifest["counts"], counts)
    if problems:
        raise BackupError("the restored database differs from the backup's manifest: " + "; ".join(problems))
    return counts


def compare_counts(expected: dict[str, int], got: dict[str, int]) -> list[str]:
    """Every table whose row count differs, or that is missing on one side."""
    problems = []
    for table in sorted(set(expected) | set(got)):
        if table not in got:
            problems.append(f"table {table} is missing ({expected[table]} rows in the backup)")
        elif table not in expected:
            problems.append(f"table {table} is not in the backup's manifest")
        elif expected[table] != got[table]:
            problems.append(f"table {table}: {got[table]} rows restored, {expected[table]} in the backup")
    return problems


def _sqlite_restore(dump: Path, target: Path) -> None:
    if target.exists() and target.stat().st_size > 0:
        with contextlib.closing(sqlite3.connect(target)) as c:
            tables = c.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        if tables:
            raise BackupError(f"{target} already holds a database ({tables} tables); a restore never overwrites "
                              "one: restore into a new file, or move the old one away first")
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(f"file:{dump}?mode=ro", uri=True)) as src, \
            contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")  # the app's mode


def _target_schema(url: URL) -> str:
    """The schema the URL's search_path puts first (`options=-csearch_path=...`), else `public`."""
    options = str(url.query.get("options", ""))
    for part in options.split():
        part = part.removeprefix("-c")
        if part.startswith("search_path="):
            return part.split("=", 1)[1].split(",")[0].strip().strip('"') or "public"
    return "public"


def _pg_restore(dump: Path, url: str, dumped_schema: str) -> None:
    """pg_restore into the empty target; the dump's schema is renamed to the target URL's when they differ
    (a dump of schema A restores into schema B of another database)."""
    parsed = make_url(url)
    target = _target_schema(parsed)
    eng = create_engine(url, poolclass=NullPool)
    try:
        with eng.begin() as c:
            present = set(c.execute(text("SELECT schema_name FROM information_schema.schemata")).scalars())
            tables_in = c.execute(text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                                  {"s": target}).scalar_one()
            if tables_in:
                raise BackupError(f"schema {target} of {parsed.database} already holds {tables_in} tables; a restore "
                                  f"never overwrites a study: restore into an empty database (`createdb NEW`)")
            if dumped_schema != target and dumped_schema in present:
                raise BackupError(f"database {parsed.database} already has a schema {dumped_schema} (the backup's); "
                                  "restore into another, empty database (`createdb NEW`)")
        args = ["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", f"--dbname={parsed.database}"]
        if dumped_schema in present:  # e.g. `public` of a new database: restore into it, do not create it
            listing = dump.with_name(dump.name + f".{secrets.token_hex(4)}.list")
            entries = _pg_tool_output("pg_restore", ["--list", str(dump)]).splitlines()
            listing.write_text("\n".join(e for e in entries if not _is_schema_entry(e, dumped_schema)) + "\n")
            args.append(f"--use-list={listing}")
        try:
            _run_pg_tool("pg_restore", parsed.set(query={}), [*args, str(dump)], dbname_flag=False)
        finally:
            if dumped_schema in present:
                listing.unlink(missing_ok=True)
        if dumped_schema != target:
            with eng.begin() as c:
                if target in present:
                    c.execute(text(f'DROP SCHEMA "{target}"'))  # empty (checked above)
                c.execute(text(f'ALTER SCHEMA "{dumped_schema}" RENAME TO "{target}"'))
    finally:
        eng.dispose()


def _is_schema_entry(entry: str, schema: str) -> bool:
    """A `pg_restore --list` line that creates or comments the schema itself (`...; SCHEMA - public owner`)."""
    return f" SCHEMA - {schema} " in entry or f" COMMENT - SCHEMA {schema} " in entry


def _pg_tool_output(name: str, args: list[str]) -> str:
    proc = subprocess.run([find_pg_tool(name), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackupError(f"{name} failed: {proc.stderr.strip()[-600:] or f'exit {proc.returncode}'}")
    return proc.stdout


def find_pg_tool(name: str) -> str:
    """`pg_dump`/`pg_restore` from PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return candidates[-1]
    raise BackupError(f"{name} not found; install the PostgreSQL client tools (Debian: apt-get install "
                      "postgresql-client) matching the server's major version")


def _run_pg_tool(name: str, url: URL, args: list[str], *, dbname_flag: bool = True) -> None:
    """Run a PostgreSQL client tool against `url`; the password goes in the environment, not argv."""
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    options = url.query.get("options")
    if options:
        env["PGOPTIONS"] = str(options)
    conn = [f"--host={url.host or 'localhost'}", f"--port={url.port or 5432}"]
    if url.username:
        conn.append(f"--username={url.username}")
    if dbname_flag:
        conn.append(f"--dbname={url.database}")
    proc = subprocess.run([find_pg_tool(name), *conn, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackupError(f"{name} failed: {proc.stderr.strip()[-600:] or f'exit {proc.returncode}'}")


# ------------------------------------------------------------------------------------------------ verify
def verify(dump: Path, *, server_url: str | None = None) -> VerifyReport:
    """Restore `dump` into a scratch database and compare every table's count with the manifest.

    SQLite restores into a temporary file; PostgreSQL creates `thoughttrace_verify_<random>` on the server
    of `server_url` (default THOUGHTTRACE_DB_URL; the role needs CREATEDB) and drops it afterwards."""
    manifest = read_manifest(dump)
    t0 = time.perf_counter()
    if manifest["engine"] == "sqlite":
        with tempfile.TemporaryDirectory(prefix="thoughttrace-verify-") as tmp:
            counts, problems = _restore_and_compare(dump, f"sqlite:///{Path(tmp) / 'scratch.sqlite'}", manifest)
    else:
        server_url = server_url or os.environ.get("THOUGHTTRACE_DB_URL")
        if not server_url or engine_of(server_url) != "postgresql":
            raise BackupError("verifying a PostgreSQL backup needs a server to restore into: pass --db "
                              "postgresql+psycopg://USER:PW@HOST/ANY_DB (a role with CREATEDB)")
        counts, problems = _verify_pg(dump, server_url, manifest)
    return VerifyReport(ok=not problems, manifest=manifest, restored_counts=counts, problems=problems,
                        restore_seconds=round(time.perf_counter() - t0, 3))


def _restore_and_compare(dump: Path, url: str, manifest: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    try:
        counts = restore(dump, url)
    except BackupError as exc:
        return {}, [str(exc)]
    eng = _plain_engine(url)
    try:
        with eng.connect() as c:
            revision = schema_revision(c)
    finally:
        eng.dispose()
    problems = []
    if revision != manifest.get("schema_revision"):
        problems.append(f"schema revision {revision} restored, {manifest.get('schema_revision')} in the manifest")
    return counts, problems


def _verify_pg(dump: Path, server_url: str, manifest: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    base = make_url(server_url)
    scratch = f"thoughttrace_verify_{secrets.token_hex(4)}"
    admin = create_engine(base.set(query={}), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            try:
                c.execute(text(f'CREATE DATABASE "{scratch}"'))
            except Exception as exc:
                raise BackupError(f"could not create the scratch database {scratch} ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0]}); grant the role CREATEDB or pass --db with one that "
                                  "has it") from None
        try:
            return _restore_and_compare(dump, base.set(database=scratch, query={}).render_as_string(
                hide_password=False), manifest)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    finally:
        admin.dispose()
