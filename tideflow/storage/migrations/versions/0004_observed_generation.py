"""Runs record the generation their engine has acted on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``generation`` counts control requests; ``observed_generation`` is the last of
them an engine has converged to, so a status can say whether the latest
request has been seen (``status.observedGeneration``, as in Kubernetes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("observed_generation", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("observed_generation")
