"""Schema migrations: run alembic programmatically, print the DDL per dialect.

``tideflow db upgrade`` calls :func:`upgrade`, ``tideflow db schema --dialect X``
prints :func:`schema_sql`. The alembic scripts live in ``migrations/`` inside
this package (shipped as package data), so no ``alembic.ini`` is needed.

The DDL of every dialect is also committed next to this module, for DBAs who
create the tables themselves (``sqlite.sql``, ``postgresql.sql``, ``mysql.sql``:
:func:`schema_script`). ``python -m tideflow.storage.migrating`` regenerates
them; a drift test fails when they no longer match the schema.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Engine
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from tideflow.errors import Problem, ValidationError
from tideflow.storage.database import connecting_errors, create_engine_for, translating_errors
from tideflow.storage.tables import metadata

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")

#: The dialects ``schema_sql`` knows; ``mariadb`` is MySQL's DDL.
DIALECTS = ("sqlite", "postgresql", "mysql")


def alembic_config() -> Config:
    """An alembic configuration pointing at the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def upgrade(target: Engine | str | URL, revision: str = "head") -> None:
    """Migrate the database behind ``target`` (an engine or a URL) to ``revision``.

    Raises:
        StorageError: the database is unreachable or refused a statement.
    """
    engine = target if isinstance(target, Engine) else create_engine_for(target)
    config = alembic_config()
    try:
        with connecting_errors(engine.url):
            connection = engine.connect()
        with (
            connection,
            translating_errors(engine.url, f"migrate to {revision}"),
            connection.begin(),
        ):
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        logger.info("database migrated", extra={"action": "migrate", "revision": revision})
    finally:
        if engine is not target:
            engine.dispose()


def _dialect(name: str) -> Dialect:
    if name == "sqlite":
        return SQLiteDialect()
    if name == "postgresql":
        return PGDialect()  # type: ignore[no-untyped-call]
    if name in ("mysql", "mariadb"):
        return MySQLDialect()
    raise ValidationError(
        [
            Problem(
                path="dialect",
                message=f"unknown dialect {name!r}; expected one of {', '.join(DIALECTS)}",
            )
        ]
    )


def schema_sql(dialect: str) -> str:
    """The ``CREATE TABLE`` / ``CREATE INDEX`` statements of the schema for ``dialect``.

    Raises:
        ValidationError: ``dialect`` is not one of :data:`DIALECTS`.
    """
    compiler_dialect = _dialect(dialect)
    statements: list[str] = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=compiler_dialect)).strip())
        for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
            statements.append(str(CreateIndex(index).compile(dialect=compiler_dialect)).strip())
    return "".join(f"{statement};\n\n" for statement in statements)


#: Where the committed DDL scripts live: ``<dialect>.sql`` beside this module.
SCRIPTS_DIR = Path(__file__).parent

#: The one command that regenerates every committed DDL script.
REGENERATE_COMMAND = "python -m tideflow.storage.migrating"

_DIALECT_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}


def head_revision() -> str:
    """The alembic head revision of the packaged migrations (the schema of ``tables.py``)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no alembic revision found in {MIGRATIONS}")
    return str(head)


def script_path(dialect: str) -> Path:
    """The committed DDL script of ``dialect`` (``mariadb`` shares ``mysql.sql``)."""
    _dialect(dialect)  # refuses an unknown name
    return SCRIPTS_DIR / f"{'mysql' if dialect == 'mariadb' else dialect}.sql"


def schema_script(dialect: str) -> str:
    """The committed DDL script of ``dialect``: a comment header, then :func:`schema_sql`.

    The header names the alembic revision the DDL corresponds to and the
    command that regenerates the script.

    Raises:
        ValidationError: ``dialect`` is not one of :data:`DIALECTS`.
    """
    ddl = schema_sql(dialect)
    name = "mysql" if dialect == "mariadb" else dialect
    revision = head_revision()
    header = [
        f"-- Tideflow schema for {_DIALECT_TITLES[name]}, alembic revision {revision} (head).",
        "--",
        f"-- Generated by `{REGENERATE_COMMAND}` from tideflow/storage/tables.py;",
        "-- do not edit by hand. The statements are those printed by",
        f"-- `tideflow db schema --dialect {name}`.",
        "--",
        "-- A database created with this script is at that revision. Record it, so that",
        "-- `tideflow db upgrade` (and database.auto_migrate) apply only later migrations:",
        "--   CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,",
        "--       CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));",
        f"--   INSERT INTO alembic_version (version_num) VALUES ('{revision}');",
    ]
    return "\n".join(header) + "\n\n" + ddl


def write_schema_scripts(directory: Path | None = None) -> list[Path]:
    """(Re)write ``sqlite.sql``, ``postgresql.sql`` and ``mysql.sql``; return their paths."""
    written: list[Path] = []
    for dialect in DIALECTS:
        path = (directory or SCRIPTS_DIR) / f"{dialect}.sql"
        path.write_text(schema_script(dialect), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schema_scripts():
        print(f"wrote {written_path}")
