"""Schema migrations: run alembic programmatically, print the DDL per dialect.

``tideflow db upgrade`` calls :func:`upgrade`, ``tideflow db schema --dialect X``
prints :func:`schema_sql`. The alembic scripts live in ``migrations/`` inside
this package (shipped as package data), so no ``alembic.ini`` is needed.
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
