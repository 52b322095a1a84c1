"""Migrations: alembic produces exactly ``tables.py``; ``schema_sql`` prints it per dialect;
the committed DDL scripts (``tideflow/storage/<dialect>.sql``) are that DDL."""

from __future__ import annotations

import difflib

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tideflow.errors import ValidationError
from tideflow.storage.database import create_engine_for
from tideflow.storage.migrating import (
    DIALECTS,
    MIGRATIONS,
    REGENERATE_COMMAND,
    alembic_config,
    head_revision,
    schema_script,
    schema_sql,
    script_path,
    upgrade,
)
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


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_committed_ddl_scripts_are_up_to_date(dialect: str) -> None:
    path = script_path(dialect)
    committed = path.read_text(encoding="utf-8") if path.is_file() else ""
    expected = schema_script(dialect)
    if committed != expected:
        diff = difflib.unified_diff(
            committed.splitlines(), expected.splitlines(), "committed", "schema", lineterm=""
        )
        pytest.fail(
            f"tideflow/storage/{path.name} does not match the schema (a migration or tables.py "
            f"changed it); regenerate the scripts with:\n    {REGENERATE_COMMAND}\n\n"
            + "\n".join(list(diff)[:40]),
            pytrace=False,
        )


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_ddl_script_names_the_head_revision_and_how_to_regenerate_it(dialect: str) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    script = schema_script(dialect)
    header, _, body = script.partition("\n\n")
    assert head_revision() == head
    assert f"alembic revision {head} (head)" in header
    assert f"`{REGENERATE_COMMAND}`" in header
    assert f"`tideflow db schema --dialect {dialect}`" in header
    assert all(line.startswith("--") for line in header.splitlines())
    assert body == schema_sql(dialect)
    assert script_path("mariadb") == script_path("mysql")


def test_a_database_created_from_the_ddl_script_is_the_migrated_schema(
    empty_database_url: str,
) -> None:
    # What a DBA does: run the script, record the revision as its header says; then
    # the tables equal the declared schema and `tideflow db upgrade` has nothing to do.
    engine = create_engine_for(empty_database_url)
    dialect = {"mariadb": "mysql"}.get(engine.dialect.name, engine.dialect.name)
    try:
        with engine.begin() as connection:
            script = schema_script(dialect).splitlines()
            ddl = "\n".join(line for line in script if not line.startswith("--"))
            for statement in ddl.split(";"):
                if statement.strip():
                    connection.exec_driver_sql(statement)
            MigrationContext.configure(connection).stamp(
                ScriptDirectory.from_config(alembic_config()), "head"
            )
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, metadata) == []
            assert context.get_current_revision() == head_revision()
    finally:
        engine.dispose()
