"""Runs carry their own labels.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A ``WorkflowRun`` manifest may have ``metadata.labels``; label selectors
(``tideflow get runs -l team=data``) see them on top of the workflow's labels,
which the run's snapshot already holds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("labels", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("labels")
