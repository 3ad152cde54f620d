"""Validity and audit: per-request seeds and latency, typing timings, design rows, screening answers,
withdrawal marks, one participant per Prolific id, the researcher's audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _duplicated_pids() -> list[str]:
    rows = op.get_bind().execute(sa.text(
        "SELECT prolific_pid FROM participants WHERE prolific_pid IS NOT NULL "
        "GROUP BY prolific_pid HAVING COUNT(*) > 1")).all()
    return [r[0] for r in rows]


def upgrade() -> None:
    dupes = _duplicated_pids()
    if dupes:
        raise RuntimeError(
            f"{len(dupes)} Prolific id(s) belong to several participants ({', '.join(dupes[:5])} ...): this "
            "version allows one participant per PROLIFIC_PID. Export the data, withdraw the duplicates you do "
            "not keep (admin page), then start the server again")
    with op.batch_alter_table("participants") as b:
        b.add_column(sa.Column("screening", sa.JSON(), nullable=True))
        b.add_column(sa.Column("design_row", sa.Integer(), nullable=True))
        b.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        b.drop_index("ix_participants_prolific_pid")
        b.create_index("ix_participants_prolific_pid", ["prolific_pid"], unique=True)
        b.create_index("ix_participants_design_row", ["design_row"])
    with op.batch_alter_table("messages") as b:
        b.add_column(sa.Column("seed", sa.Integer(), nullable=True))
        b.add_column(sa.Column("latency_ms", sa.Integer(), nullable=True))
    with op.batch_alter_table("thoughts") as b:
        b.add_column(sa.Column("typing_ms", sa.Integer(), nullable=True))
        b.add_column(sa.Column("keystrokes", sa.Integer(), nullable=True))
    op.create_table(
        "admin_actions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("action", sa.String(32), nullable=False, index=True),
        sa.Column("participant_public_id", sa.String(32), nullable=True),
        sa.Column("prolific_pid", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("admin_actions")
    with op.batch_alter_table("thoughts") as b:
        b.drop_column("keystrokes")
        b.drop_column("typing_ms")
    with op.batch_alter_table("messages") as b:
        b.drop_column("latency_ms")
        b.drop_column("seed")
    with op.batch_alter_table("participants") as b:
        b.drop_index("ix_participants_design_row")
        b.drop_index("ix_participants_prolific_pid")
        b.create_index("ix_participants_prolific_pid", ["prolific_pid"])
        b.drop_column("withdrawn_at")
        b.drop_column("design_row")
        b.drop_column("screening")
