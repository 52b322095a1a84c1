"""Pool slots shared by every engine on the database.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

``pools`` has one row per pool, locked while slots are counted and taken, so
two engines cannot both take the last slot. A ``pool_slots`` row is a holding:
it counts only while its owner still owns the run, so an engine that dies
stops holding slots the moment another engine claims its runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_pools"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_table(
        "pool_slots",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("pool", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("acquired_at", _datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_pool_slots_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "task", name="pk_pool_slots"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_pool_slots_pool", "pool_slots", ["pool"])


def downgrade() -> None:
    op.drop_table("pool_slots")
    op.drop_table("pools")
