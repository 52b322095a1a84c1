"""The SQL schema of Tideflow's durable state, as SQLAlchemy Core tables.

This module is the single declaration of the schema: :mod:`tideflow.storage.store`
queries these tables, ``tideflow db schema`` compiles them into DDL per dialect,
and a drift test proves the alembic migrations produce exactly this metadata.

The schema is portable across SQLite, PostgreSQL and MySQL/MariaDB:

* names are bounded at 255 characters so composite indexes fit MariaDB's 3072-byte
  key limit under utf8mb4 (4 bytes per character);
* large text (manifests, outputs, log lines) is ``LONGTEXT`` on MySQL, whose
  ``TEXT`` stops at 64 KiB;
* datetimes are stored as naive UTC with microseconds and read back aware (see
  :class:`UtcDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator, TypeEngine

#: Constraint and index names are derived, so migrations and metadata agree on them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Table options for MySQL/MariaDB: a full UTF-8 charset and binary (case- and
#: accent-sensitive) comparison, so unique names behave as on PostgreSQL and SQLite.
MYSQL_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

NAME_LENGTH = 255

#: Unbounded text; MySQL's plain TEXT holds only 64 KiB.
LongText: TypeEngine[str] = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

#: The timestamp column type underneath :class:`UtcDateTime`; MySQL drops
#: fractional seconds unless asked for them.
DateTimeMicro: TypeEngine[datetime] = DateTime().with_variant(
    mysql.DATETIME(fsp=6), "mysql", "mariadb"
)

#: Auto-incremented 64-bit ids; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, stored naive UTC (to the microsecond), aware UTC out.

    Naive datetimes are refused rather than guessed at: every datetime crossing
    the ``Store`` protocol is aware.
    """

    impl = DateTimeMicro
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

workflows = Table(
    "workflows",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("generation", Integer, nullable=False),
    #: The Workflow document (``tideflow.model.to_document``) as JSON.
    Column("manifest", LongText, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("namespace", "name"),
    **MYSQL_TABLE_OPTIONS,
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(NAME_LENGTH), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("workflow_name", String(NAME_LENGTH), nullable=False),
    #: Snapshot of the Workflow document when the run was created, as JSON.
    Column("workflow", LongText, nullable=False),
    Column("params", LongText, nullable=False),
    Column("desired_state", String(32), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("owner", String(NAME_LENGTH), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("message", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    #: The run's own labels (its WorkflowRun manifest's) as a JSON object; NULL for none.
    Column("labels", Text, nullable=True),
    #: The last ``generation`` (control request) the owning engine has acted on.
    Column("observed_generation", Integer, nullable=False, server_default="0"),
    UniqueConstraint("namespace", "name"),
    # claim_runs scans unfinished runs; list_runs filters by workflow.
    Index(None, "phase"),
    Index(None, "namespace", "workflow_name"),
    **MYSQL_TABLE_OPTIONS,
)

task_instances = Table(
    "task_instances",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(NAME_LENGTH), primary_key=True),
    #: Insertion order within the run (``list_tasks`` returns tasks in this order).
    Column("seq", Integer, nullable=False),
    Column("task", String(NAME_LENGTH), nullable=False),
    Column("idx", Integer, nullable=True),
    #: A fan-out child's ``forEach`` element (or spawned sub-task), as JSON; set on insert.
    Column("item", LongText, nullable=True),
    Column("phase", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("output", LongText, nullable=True),
    Column("error", LongText, nullable=True),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("not_before", UtcDateTime, nullable=True),
    Column("attempt_base", Integer, nullable=False, server_default="0"),
    Index(None, "run_id", "seq"),
    **MYSQL_TABLE_OPTIONS,
)

task_logs = Table(
    "task_logs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("task", String(NAME_LENGTH), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("stream", String(16), nullable=False),
    Column("text", LongText, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "run_id", "task"),
    **MYSQL_TABLE_OPTIONS,
)

#: One row per pool: locked while its slots are counted and taken.
pools = Table(
    "pools",
    metadata,
    Column("name", String(NAME_LENGTH), primary_key=True),
    #: Slots shared by every engine on the database; NULL (never set) means one.
    Column("capacity", Integer, nullable=True),
    **MYSQL_TABLE_OPTIONS,
)

#: A slot held by an attempt. It counts only while ``owner`` still owns the run,
#: so the slots of an engine that died are free once another engine claims its runs.
pool_slots = Table(
    "pool_slots",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("task", String(NAME_LENGTH), primary_key=True),
    Column("pool", String(NAME_LENGTH), nullable=False),
    Column("owner", String(NAME_LENGTH), nullable=False),
    Column("acquired_at", UtcDateTime, nullable=False),
    Index(None, "pool"),
    **MYSQL_TABLE_OPTIONS,
)
