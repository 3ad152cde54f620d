"""Database tables (SQLAlchemy 2) and the engine: SQLite (WAL) by default, PostgreSQL by URL.

Tables hold raw participant text; escaping happens only when a page is rendered. Every table that
belongs to a participant hangs off `participants` so that withdrawal deletes all of it; the participant
row itself stays (stage `withdrawn`, no answers) so the payment record is marked, not silently lost.
Researcher actions (withdrawals, Prolific calls) go to `admin_actions`, which no withdrawal touches.
Failed admin logins go to `login_failures`, so the throttle holds across worker processes.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.pool import NullPool


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    """Unguessable public ids: participants and conversations are addressed by these, never by row ids."""
    return secrets.token_urlsafe(12)


class Base(DeclarativeBase):
    pass


class TZDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite stores no zone; we put UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None and dialect.name == "sqlite":
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Participant(Base):
    __tablename__ = "participants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    #: one participant per Prolific id (NULLs, i.e. anonymous entries, are distinct on both databases)
    prolific_pid: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    study_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16), default="consent")
    task_index: Mapped[int] = mapped_column(Integer, default=0)
    quiz_attempts: Mapped[int] = mapped_column(Integer, default=0)
    survey: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    screening: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: the row of the model design (a Latin square) this participant follows; set at the first task
    design_row: Mapped[int | None] = mapped_column(Integer, index=True)
    #: the design (see `design.py`) that row belongs to: rows are counted per design
    design_id: Mapped[str | None] = mapped_column(String(64), index=True)
    #: the study configuration version the participant started under (`study_versions.id`), kept to the end
    study_version: Mapped[int | None] = mapped_column(Integer)
    #: the version whose consent text the participant agreed to, and that text's sha256
    consent_version: Mapped[int | None] = mapped_column(Integer)
    consent_hash: Mapped[str | None] = mapped_column(String(64))
    #: the stage a withdrawal started from (`done`: they finished, and are still paid as such)
    withdrawn_from_stage: Mapped[str | None] = mapped_column(String(16))
    withdrawn_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    consented_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    quiz_passed_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    conversations: Mapped[list[Conversation]] = relationship(
        back_populates="participant", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Conversation.task_index")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("participant_id", "task_index", name="uq_conversation_task"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    task_index: Mapped[int] = mapped_column(Integer)
    task_statement: Mapped[str] = mapped_column(Text)
    model_key: Mapped[str] = mapped_column(String(64), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_provider: Mapped[str] = mapped_column(String(200))
    model_spec: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(TZDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(TZDateTime())
    task_summary: Mapped[str | None] = mapped_column(Text)
    task_expectation: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)
    participant: Mapped[Participant] = relationship(back_populates="conversations")
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete-orphan", passive_deletes=True, order_by="Message.seq")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_message_seq"),
        UniqueConstraint("conversation_id", "client_key", name="uq_message_client_key"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    client_key: Mapped[str | None] = mapped_column(String(64))
    #: the sampling seed the model was called with (assistant messages): a fresh random one per request
    seed: Mapped[int | None] = mapped_column(Integer)
    #: model answer time in milliseconds (assistant messages), for the live monitor
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    #: how the answer ended (assistant messages): stop, length (max_tokens) or dropped (no end marker)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    thoughts: Mapped[list[Thought]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True, order_by="Thought.id")


class Thought(Base):
    """A private note: kind 'reason' (on a user message) or 'reaction' (on an assistant message)."""

    __tablename__ = "thoughts"
    __table_args__ = (UniqueConstraint("message_id", "kind", name="uq_thought_kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(100))
    client_key: Mapped[str | None] = mapped_column(String(64))
    #: milliseconds from the first keystroke to sending, and the number of keystrokes (from the page)
    typing_ms: Mapped[int | None] = mapped_column(Integer)
    keystrokes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    message: Mapped[Message] = relationship(back_populates="thoughts")


class Event(Base):
    """An audit line: model assignments, failed model calls, quiz attempts (for the researcher)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class AdminAction(Base):
    """The researcher's audit log: withdrawals, Prolific approvals/rejections/bonuses (dry runs too).

    Not tied to `participants` by a foreign key, so a withdrawal never deletes its own record.
    """

    __tablename__ = "admin_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    participant_public_id: Mapped[str | None] = mapped_column(String(32))
    prolific_pid: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class StudyVersion(Base):
    """One version of the study configuration, stored whole: a participant keeps the one they started under."""

    __tablename__ = "study_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    consent_hash: Mapped[str] = mapped_column(String(64))
    design_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)


class StudyState(Base):
    """The study's state for every worker: open, paused (no new entries for now) or closed (for good)."""

    __tablename__ = "study_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)


class LoginFailure(Base):
    """A failed admin login (client address, time): the login throttle of every worker reads these."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(TZDateTime(), index=True)
    #: the first 24 hex digits of sha256(token tried): guesses of one token count over every address
    token_hash: Mapped[str | None] = mapped_column(String(24), index=True)


class PaymentEntry(Base):
    """One Prolific payment action (approve, reject, bonus), written before it is sent (see `payments.py`).

    `key` is the idempotency key (one per participant/submission and action): its unique index is what
    makes a second run, or a concurrent one, send nothing for a key already recorded.
    """

    __tablename__ = "payment_ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    action: Mapped[str] = mapped_column(String(16), index=True)
    study_id: Mapped[str | None] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(64))
    #: a plain decimal in the study currency ("1.50"), bonuses only; text, never a float
    amount: Mapped[str | None] = mapped_column(String(16))
    #: pending (recorded, not answered yet), set_up (bonus set up, not paid), sent, failed (Prolific refused:
    #: nothing happened, may be sent again), unknown (no answer: never resent automatically)
    status: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str] = mapped_column(String(32))
    bulk_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow, onupdate=utcnow)


class AdminSession(Base):
    """A researcher's login: the admin cookie names one of these, so logging out ends it on the server."""

    __tablename__ = "admin_sessions"
    #: sha256 of the session token the cookie carries (the token itself is never stored)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(TZDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(TZDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(TZDateTime())


def make_engine(url: str) -> Engine:
    """An engine tuned per database: SQLite gets WAL, a busy timeout, foreign keys and IMMEDIATE transactions.

    IMMEDIATE takes SQLite's write lock at BEGIN, so two concurrent writers queue on the busy timeout
    instead of one failing with 'database is locked' when it upgrades a read lock.
    """
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
        else:
            kwargs.update(pool_size=8, max_overflow=16)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # straight to the driver: through `exec_driver_sql` this one statement cost as much CPU as a query
            conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        # per worker process: N workers hold up to N x (size + overflow) connections of the server's
        # max_connections (100 by default); requests beyond wait for a free one (pool_timeout). No overflow
        # by default: an overflow connection is closed when returned, so under load every burst paid a new
        # backend (fork, authentication) per request; a worker on a couple of cores gains nothing from
        # more transactions at once than its pool holds anyway
        size = int(os.environ.get("THOUGHTTRACE_DB_POOL_SIZE", "8"))
        overflow = int(os.environ.get("THOUGHTTRACE_DB_MAX_OVERFLOW", "0"))
        engine = create_engine(url, pool_size=size, max_overflow=overflow, pool_timeout=60)
        _ping_after_idle(engine, PING_AFTER_IDLE_SECONDS)
        return engine
    raise ValueError(f"--db {url!r} is not a database URL this platform runs on: use sqlite:///study.sqlite "
                     "or postgresql+psycopg://USER:PASSWORD@HOST:5432/DB")


#: a pooled PostgreSQL connection idle longer than this is pinged before use (see `_ping_after_idle`)
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: Engine, seconds: float) -> None:
    """Ping a pooled connection before use when it sat idle for more than `seconds`; replace it if dead.

    What `pool_pre_ping` does for every checkout, a round trip and a tenth of a millisecond of CPU per
    transaction (about 5% of a participant request), kept for the connections that can have gone stale:
    a database restart or a dropped connection happens while connections rest in the pool, and under
    load none rests there for a second. A dead one raises `DisconnectionError`, on which the pool
    discards it and checks out (reconnects) another, so the request still succeeds.
    """

    @event.listens_for(engine, "checkin")
    def _rested(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"stale pooled connection: {exc}") from exc


class Database:
    """The engine plus a session factory; `session()` (ORM, the researcher's pages) and `transaction()`
    (Core, the participant side: see `queries`) commit on success and roll back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: where PostgreSQL transactions run (one thread per pooled connection); None for SQLite, whose
        #: transactions run on the event loop (see `deps.run_tx`)
        self.executor: ThreadPoolExecutor | None = None
        if not self.is_sqlite:
            size = getattr(self.engine.pool, "size", None)
            self.executor = ThreadPoolExecutor(max_workers=size() if callable(size) else 8,
                                               thread_name_prefix="thoughttrace-db")
        #: SQLite: one connection kept open for the transactions that run one after another on the event
        #: loop (a pool checkout, reset and checkin per transaction cost ~0.1 ms, 8% of a request); a
        #: transaction that finds it busy (another thread, or nested) takes a pooled one as before
        self._kept: Connection | None = None
        self._kept_lock = threading.Lock()
        #: SQLite: the engine of `snapshot()` readers (deferred transactions, no write lock)
        self._reader: Engine | None = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self.sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One Core transaction: committed when the block ends, rolled back when it raises."""
        if not self.is_sqlite or not self._kept_lock.acquire(blocking=False):
            with self.engine.begin() as c:
                yield c
            return
        try:
            if self._kept is None or self._kept.closed:
                self._kept = self.engine.connect()
            with self._kept.begin():
                yield self._kept
        finally:
            self._kept_lock.release()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A read-only ORM session on a connection of its own that sees one consistent state of the
        database and blocks no participant (exports, the researcher's long reads).

        SQLite: every transaction of the main engine is BEGIN IMMEDIATE, i.e. holds the one write lock;
        an export read through it stalled every participant for its whole length. Here a separate,
        unpooled connection opens a plain (deferred) transaction: in WAL mode that is a reader that
        sees the database as of its first read while writers go on. PostgreSQL: a REPEATABLE READ
        transaction (one snapshot; readers never block writers there). An in-memory SQLite database
        has one connection only: the ordinary session.
        """
        if self.is_sqlite and self.url in ("sqlite://", "sqlite:///:memory:"):
            with self.session() as s:
                yield s
            return
        if self.is_sqlite:
            conn = self._snapshot_engine().connect()
        else:
            conn = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
        try:
            with conn.begin():
                s = Session(bind=conn)
                try:
                    yield s
                finally:
                    s.close()
        finally:
            conn.close()

    def _snapshot_engine(self) -> Engine:
        with self._kept_lock:
            if self._reader is None:
                reader = create_engine(self.url, poolclass=NullPool,
                                       connect_args={"check_same_thread": False, "timeout": 30})

                @event.listens_for(reader, "connect")
                def _reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
                    dbapi_conn.isolation_level = None
                    dbapi_conn.execute("PRAGMA busy_timeout=30000")
                    dbapi_conn.execute("PRAGMA query_only=ON")

                @event.listens_for(reader, "begin")
                def _reader_begin(conn: Any) -> None:
                    conn.connection.dbapi_connection.execute("BEGIN")  # deferred: a WAL reader

                self._reader = reader
            return self._reader

    def dispose(self) -> None:
        with self._kept_lock:
            if self._reader is not None:
                self._reader.dispose()
                self._reader = None
            if self._kept is not None:
                self._kept.close()
                self._kept = None
        if self.executor is not None:
            self.executor.shutdown(wait=False)
            self.executor = None
        self.engine.dispose()
