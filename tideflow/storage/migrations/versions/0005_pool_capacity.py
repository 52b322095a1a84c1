"""Pool capacities live with the pools.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Every engine on a database shares a pool's slots, so the capacity is stored
once, with the pool, instead of each engine passing its own configured one.
NULL means never set: such a pool has one slot.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pools") as batch:
        batch.add_column(sa.Column("capacity", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pools") as batch:
        batch.drop_column("capacity")
