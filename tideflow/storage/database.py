"""Engines for the supported databases, and translation of their errors.

Front doors call :func:`create_engine_for` with the user's database URL (from
``TIDEFLOW_DATABASE_URL`` or the config file); :class:`~tideflow.storage.store.SqlStore`
and :mod:`~tideflow.storage.migrating` run their statements inside
:func:`translating_errors`, so ``sqlalchemy.exc`` never leaves this package.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, exc, make_url
from sqlalchemy.pool import StaticPool

from tideflow.errors import StorageError

logger = logging.getLogger(__name__)

#: The driver used for each backend when the URL names none.
DEFAULT_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}

#: SQLite waits this long (ms) for another writer before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000


def parse_url(url: str | URL) -> URL:
    """Parse ``url`` and fill in Tideflow's driver for PostgreSQL and MySQL/MariaDB.

    ``postgresql://`` becomes ``postgresql+psycopg://`` (psycopg 3) and
    ``mysql://`` / ``mariadb://`` get ``+pymysql``; a driver the user named is kept.
    """
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        # The text may hold a password, so it is not echoed back.
        raise StorageError(
            "not a valid database URL; expected e.g. sqlite:///tideflow.db or "
            "postgresql://user@host/dbname"
        ) from error
    backend = parsed.get_backend_name()
    if "+" not in parsed.drivername and backend in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=f"{backend}+{DEFAULT_DRIVERS[backend]}")
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        # Full UTF-8 on the wire; the tables are utf8mb4 too (see tables.py).
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def safe_url(url: URL) -> str:
    """The URL as text with any password masked, for messages and logs."""
    return url.render_as_string(hide_password=True)


def create_engine_for(url: str | URL) -> Engine:
    """An engine for ``url``, configured for Tideflow's access pattern.

    SQLite files run in WAL mode and every transaction starts with
    ``BEGIN IMMEDIATE``: taking the write lock up front avoids the deadlock of
    two processes that both read and then both try to upgrade to writing (which
    SQLite reports as ``SQLITE_BUSY`` without waiting). Server databases get
    ``pool_pre_ping`` so a restarted server costs one reconnect, not an error.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True, pool_recycle=3600)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise StorageError(f"cannot use database {safe_url(parsed)}: {error}") from error


def _sqlite_engine(url: URL) -> Engine:
    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if in_memory:
        # One shared connection, or every pooled connection would see its own
        # empty database. Such an engine must not be used by threads concurrently.
        options["poolclass"] = StaticPool
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the sqlite3 module from issuing its own (deferred) BEGIN; see _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def describe(error: exc.SQLAlchemyError) -> str:
    """The driver's own message, without SQLAlchemy's echo of statement and parameters."""
    original = getattr(error, "orig", None)
    text = str(original) if original is not None else str(error).split("\n", 1)[0]
    return text.strip() or type(error).__name__


#: Driver error codes meaning "this transaction lost a lock race; run it again".
_RETRYABLE_MYSQL_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def is_retryable(error: exc.DBAPIError) -> bool:
    """Whether ``error`` is a deadlock or serialization failure worth retrying."""
    original = error.orig
    if getattr(original, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        return True
    args: tuple[Any, ...] = getattr(original, "args", ())
    return bool(args) and args[0] in _RETRYABLE_MYSQL_CODES


@contextmanager
def translating_errors(url: URL, doing: str) -> Iterator[None]:
    """Turn SQLAlchemy errors raised inside the block into :class:`StorageError`.

    Args:
        url: the database's URL, shown with its password masked.
        doing: what was being attempted, for the message ("apply workflow").
    """
    try:
        yield
    except exc.DBAPIError as error:
        if error.connection_invalidated or isinstance(error, exc.InterfaceError):
            message = f"lost connection to database {safe_url(url)}"
        else:
            message = f"database {safe_url(url)} failed to {doing}"
        raise StorageError(f"{message}: {describe(error)}") from error
    except exc.SQLAlchemyError as error:
        raise StorageError(
            f"database {safe_url(url)} failed to {doing}: {describe(error)}"
        ) from error


@contextmanager
def connecting_errors(url: URL) -> Iterator[None]:
    """Like :func:`translating_errors`, for opening a connection: the database is unreachable."""
    try:
        yield
    except exc.SQLAlchemyError as error:
        raise StorageError(
            f"cannot connect to database {safe_url(url)}: {describe(error)}"
        ) from error
