"""The payment ledger (every Prolific approve / reject / bonus, recorded before it is sent), server-side admin
sessions (log out ends one), each answer's finish_reason, and the token a failed admin login tried (hashed).

Revision ID: 0005_ledger
Revises: 0004_design_versions
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_ledger"
down_revision = "0004_design_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_ledger",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("action", sa.String(16), nullable=False, index=True),
        sa.Column("study_id", sa.String(64), nullable=True, index=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("amount", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("bulk_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("messages") as b:
        b.add_column(sa.Column("finish_reason", sa.String(16), nullable=True))
    with op.batch_alter_table("login_failures") as b:
        b.add_column(sa.Column("token_hash", sa.String(24), nullable=True))
        b.create_index("ix_login_failures_token_hash", ["token_hash"])


def downgrade() -> None:
    with op.batch_alter_table("login_failures") as b:
        b.drop_index("ix_login_failures_token_hash")
        b.drop_column("token_hash")
    with op.batch_alter_table("messages") as b:
        b.drop_column("finish_reason")
    op.drop_table("admin_sessions")
    op.drop_table("payment_ledger")
