"""Study design and versions: versioned study configurations, the study's state (open / paused /
closed), and per participant the configuration version, the consent text agreed to, the design and
the stage a withdrawal started from (so `completed` survives a withdrawal).

Revision ID: 0004_design_versions
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_design_versions"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "study_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("consent_hash", sa.String(64), nullable=False),
        sa.Column("design_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "study_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("participants") as b:
        b.add_column(sa.Column("study_version", sa.Integer(), nullable=True))
        b.add_column(sa.Column("consent_version", sa.Integer(), nullable=True))
        b.add_column(sa.Column("consent_hash", sa.String(64), nullable=True))
        b.add_column(sa.Column("design_id", sa.String(64), nullable=True))
        b.add_column(sa.Column("withdrawn_from_stage", sa.String(16), nullable=True))
        b.create_index("ix_participants_design_id", ["design_id"])


def downgrade() -> None:
    with op.batch_alter_table("participants") as b:
        b.drop_index("ix_participants_design_id")
        b.drop_column("withdrawn_from_stage")
        b.drop_column("design_id")
        b.drop_column("consent_hash")
        b.drop_column("consent_version")
        b.drop_column("study_version")
    op.drop_table("study_state")
    op.drop_table("study_versions")
