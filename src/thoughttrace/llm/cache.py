"""SQLite response cache.

The key is a hash of everything that changes the output (model fingerprint, request kind, messages,
sampling parameters, sample index) and nothing else: API keys, URLs and timeouts never enter it, so a
cache file made against a large remote model replays here exactly, offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1


def default_cache_path() -> Path:
    """THOUGHTTRACE_CACHE, else ~/.cache/thoughttrace/llm-cache.sqlite."""
    env = os.environ.get("THOUGHTTRACE_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "thoughttrace" / "llm-cache.sqlite"


def cache_key(payload: dict[str, Any]) -> str:
    """Stable sha256 over a canonical JSON encoding of the request."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class SQLiteStore:
    """One SQLite file (WAL, one connection per thread), safe across threads and processes.

    Subclasses give their table in `SCHEMA`; a `meta` table records the format version.
    """

    SCHEMA: str = ""
    FORMAT_VERSION: int = FORMAT_VERSION

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.execute(self.SCHEMA)
        conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('format_version', ?)", (str(self.FORMAT_VERSION),))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn


class ResponseCache(SQLiteStore):
    """Model responses: key -> JSON value, with the model and request kind for `cache info|clear`."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
        "kind TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL)"
    )

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def put(self, key: str, model: str, kind: str, value: dict[str, Any]) -> None:
        now = time.time()
        self._conn().execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (key, model, kind, json.dumps(value, ensure_ascii=False), now, now),
        )

    def info(self) -> dict[str, Any]:
        conn = self._conn()
        rows = conn.execute(
            "SELECT model, kind, COUNT(*) FROM responses GROUP BY model, kind ORDER BY model, kind"
        ).fetchall()
        size = self.path.stat().st_size if self.path.exists() else 0
        return {
            "format_version": FORMAT_VERSION,
            "path": str(self.path),
            "entries": sum(r[2] for r in rows),
            "bytes": size,
            "by_model": [{"model": m, "kind": k, "entries": n} for m, k, n in rows],
        }

    def clear(self, model: str | None = None) -> int:
        conn = self._conn()
        cur = (
            conn.execute("DELETE FROM responses WHERE model = ?", (model,))
            if model
            else conn.execute("DELETE FROM responses")
        )
        return cur.rowcount

    def prune(self, older_than_days: float) -> int:
        cutoff = time.time() - older_than_days * 86400
        return self._conn().execute("DELETE FROM responses WHERE created < ?", (cutoff,)).rowcount

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        for key, model, kind, value, created in self._conn().execute(
            "SELECT key, model, kind, value, created FROM responses ORDER BY created"
        ):
            yield {"key": key, "model": model, "kind": kind, "value": json.loads(value), "created": created}

    def export_jsonl(self, out: str | Path) -> int:
        """Write every entry as JSONL (first line: a header with the format version)."""
        n = 0
        from ..outputs import open_output

        with open_output(out, allow_stdout=True) as fh:
            fh.write(json.dumps({"thoughttrace_cache": FORMAT_VERSION}) + "\n")
            for row in self.iter_rows():
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        return n

    def import_file(self, src: str | Path) -> int:
        """Merge entries from an exported JSONL or another cache SQLite file."""
        src = Path(src)
        n = 0
        if src.suffix in {".sqlite", ".db", ".sqlite3"}:
            rows: Iterator[dict[str, Any]] = ResponseCache(src).iter_rows()
        else:
            rows = _read_export(src)
        for row in rows:
            self.put(row["key"], row["model"], row["kind"], row["value"])
            n += 1
        return n


def _read_export(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a `cache export` file; anything else is a ValueError naming the file, the line and the fix."""
    what = "give a file written by `thoughttrace cache export` (JSONL) or a cache .sqlite file"
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                row = json.loads(raw.decode("utf-8")) if raw.strip() else None
            except UnicodeDecodeError:
                raise ValueError(f"{path}: line {number} is not UTF-8 text, so not a cache export; {what}") from None
            except json.JSONDecodeError:
                raise ValueError(f"{path}: line {number} is not JSON, so not a cache export; {what}") from None
            if number == 1:
                if not isinstance(row, dict) or "thoughttrace_cache" not in row:
                    raise ValueError(f"{path} is not a thoughttrace cache export (no header line); {what}")
                continue
            if row is not None:
                if not isinstance(row, dict) or not {"key", "model", "kind", "value"} <= row.keys():
                    raise ValueError(f"{path}: line {number} is not a cache entry; {what}")
                yield row
