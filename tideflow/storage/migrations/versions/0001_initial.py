"""Initial schema: workflows, runs, task instances, task logs.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Types are spelled out here rather than imported from ``tables.py``, so this
revision keeps creating the same schema when the models move on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def _long_text() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("manifest", _long_text(), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("updated_at", _datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
        sa.UniqueConstraint("namespace", "name", name="uq_workflows_namespace_name"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("workflow", _long_text(), nullable=False),
        sa.Column("params", _long_text(), nullable=False),
        sa.Column("desired_state", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", _datetime(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("started_at", _datetime(), nullable=True),
        sa.Column("finished_at", _datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("namespace", "name", name="uq_runs_namespace_name"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_runs_phase", "runs", ["phase"])
    op.create_index("ix_runs_namespace_workflow_name", "runs", ["namespace", "workflow_name"])
    op.create_table(
        "task_instances",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=True),
        sa.Column("item", _long_text(), nullable=True),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("output", _long_text(), nullable=True),
        sa.Column("error", _long_text(), nullable=True),
        sa.Column("started_at", _datetime(), nullable=True),
        sa.Column("finished_at", _datetime(), nullable=True),
        sa.Column("not_before", _datetime(), nullable=True),
        sa.Column("attempt_base", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_task_instances_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_task_instances"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_task_instances_run_id_seq", "task_instances", ["run_id", "seq"])
    op.create_table(
        "task_logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(16), nullable=False),
        sa.Column("text", _long_text(), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_task_logs_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_task_logs"),
        **MYSQL_TABLE_OPTIONS,
    )
    op.create_index("ix_task_logs_run_id_task", "task_logs", ["run_id", "task"])


def downgrade() -> None:
    op.drop_table("task_logs")
    op.drop_table("task_instances")
    op.drop_table("runs")
    op.drop_table("workflows")
