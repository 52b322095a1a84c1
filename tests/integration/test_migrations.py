"""Migrations: alembic produces exactly ``tables.py``; ``schema_sql`` prints it per dialect."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tideflow.errors import ValidationError
from tideflow.storage.database import create_engine_for
from tideflow.storage.migrating import MIGRATIONS, alembic_config, schema_sql, upgrade
from tideflow.storage.tables import metadata

TABLES = {"workflows", "runs", "task_instances", "task_logs"}


def test_migrations_produce_exactly_the_declared_schema(database_url: str) -> None:
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, metadata)
            revision = context.get_current_revision()
            precision = datetime_precision(connection)
    finally:
        engine.dispose()
    assert differences == []
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()
    # compare_metadata overlooks MySQL's DATETIME precision (fsp); without it
    # MySQL silently drops microseconds, so it is checked by hand.
    assert set(precision.values()) <= {6}, precision


def datetime_precision(connection: sa.Connection) -> dict[str, int | None]:
    """Fractional-second digits of each MySQL DATETIME column (empty on other dialects)."""
    if connection.dialect.name not in ("mysql", "mariadb"):
        return {}
    inspector = sa.inspect(connection)
    return {
        f"{table}.{column['name']}": getattr(column["type"], "fsp", None)
        for table in sorted(TABLES)
        for column in inspector.get_columns(table)
        if isinstance(column["type"], sa.DateTime)
    }


def test_upgrade_is_idempotent_and_creates_the_tables(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    upgrade(empty_database_url)
    engine = create_engine_for(empty_database_url)
    try:
        with engine.connect() as connection:
            assert set(sa.inspect(connection).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert (MIGRATIONS / "versions" / "0001_initial.py").is_file()


@pytest.mark.parametrize(
    ("dialect", "marker"),
    [("sqlite", "DATETIME NOT NULL"), ("postgresql", "TIMESTAMP"), ("mysql", "LONGTEXT")],
)
def test_schema_sql_renders_every_table_for_each_dialect(dialect: str, marker: str) -> None:
    ddl = schema_sql(dialect)
    for table in TABLES:
        assert f"CREATE TABLE {table} (" in ddl
    assert "CREATE INDEX ix_runs_phase ON runs (phase);" in ddl
    assert marker in ddl


def test_schema_sql_runs_on_sqlite() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        for statement in schema_sql("sqlite").split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)
        assert set(sa.inspect(connection).get_table_names()) >= TABLES
    engine.dispose()


def test_schema_sql_refuses_an_unknown_dialect() -> None:
    with pytest.raises(ValidationError, match="unknown dialect 'oracle'"):
        schema_sql("oracle")
