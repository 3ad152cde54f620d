"""The first tables: participants, conversations, messages, thoughts, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("prolific_pid", sa.String(64), nullable=True, index=True),
        sa.Column("study_id", sa.String(64), nullable=True),
        sa.Column("session_id", sa.String(64), nullable=True),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("quiz_attempts", sa.Integer(), nullable=False),
        sa.Column("survey", sa.JSON(), nullable=True),
        _ts("consented_at"), _ts("quiz_passed_at"), _ts("completed_at"),
        _ts("created_at", False), _ts("updated_at", False),
    )
    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participants.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("task_index", sa.Integer(), nullable=False),
        sa.Column("task_statement", sa.Text(), nullable=False),
        sa.Column("model_key", sa.String(64), nullable=False, index=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_provider", sa.String(200), nullable=False),
        sa.Column("model_spec", sa.String(500), nullable=False),
        _ts("started_at", False), _ts("deadline_at", False), _ts("ended_at"),
        sa.Column("task_summary", sa.Text(), nullable=True),
        sa.Column("task_expectation", sa.Text(), nullable=True),
        _ts("created_at", False), _ts("updated_at", False),
        sa.UniqueConstraint("participant_id", "task_index", name="uq_conversation_task"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.String(32), nullable=False, unique=True),
        sa.Column("conversation_id", sa.Integer(), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("client_key", sa.String(64), nullable=True),
        _ts("created_at", False),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_message_seq"),
        sa.UniqueConstraint("conversation_id", "client_key", name="uq_message_client_key"),
    )
    op.create_table(
        "thoughts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("client_key", sa.String(64), nullable=True),
        _ts("created_at", False),
        sa.UniqueConstraint("message_id", "kind", name="uq_thought_kind"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participants.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("conversation_id", sa.Integer(), sa.ForeignKey("conversations.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        _ts("created_at", False),
    )


def downgrade() -> None:
    for table in ("events", "thoughts", "messages", "conversations", "participants"):
        op.drop_table(table)
