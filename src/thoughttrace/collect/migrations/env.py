"""Alembic environment: run on the connection `thoughttrace.collect.migrate` hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from thoughttrace.collect.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - we never run alembic from its own CLI
    raise RuntimeError("run migrations through thoughttrace.collect.migrate.upgrade(engine)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
