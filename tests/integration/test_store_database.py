"""Engines and errors: driver choice, SQLite settings, unreachable databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from tideflow.errors import StorageError
from tideflow.storage.database import create_engine_for, parse_url
from tideflow.storage.migrating import upgrade
from tideflow.storage.store import SqlStore


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@db/tf", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/tf", "postgresql+psycopg"),
        ("mysql://u@db/tf", "mysql+pymysql"),
        ("mariadb://u@db/tf", "mariadb+pymysql"),
        ("mysql+pymysql://u@db/tf", "mysql+pymysql"),
        ("sqlite:///tf.db", "sqlite"),
    ],
)
def test_urls_get_tideflows_driver_unless_one_is_named(given: str, driver: str) -> None:
    assert parse_url(given).drivername == driver


def test_mysql_urls_talk_utf8mb4() -> None:
    assert parse_url("mysql://u@db/tf").query["charset"] == "utf8mb4"
    assert parse_url("mysql://u@db/tf?charset=latin1").query["charset"] == "latin1"


def test_an_invalid_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(StorageError, match="not a valid database URL") as caught:
        create_engine_for("not a url with hunter2")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:hunter2@127.0.0.1:1/tf",
        "mysql://root:hunter2@127.0.0.1:1/tf",
    ],
    ids=["postgresql", "mysql"],
)
def test_an_unreachable_server_is_a_storage_error_without_the_password(url: str) -> None:
    store = SqlStore.from_url(url)
    with pytest.raises(
        StorageError, match=r"cannot connect to database .*127\.0\.0\.1:1"
    ) as caught:
        store.list_runs()
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)
    with pytest.raises(StorageError, match="cannot connect") as caught:
        upgrade(url)
    assert "hunter2" not in str(caught.value)


def test_an_unmigrated_database_is_a_storage_error(tmp_path: Path) -> None:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StorageError, match="failed to list runs: no such table: runs"):
        store.list_runs()
    store.close()


def test_sqlite_files_run_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'tf.db'}")
    with engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA foreign_keys").scalar() == 1
        assert pragma("PRAGMA busy_timeout").scalar() == 10_000
        assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
    engine.dispose()


def test_sqlite_transactions_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "tf.db"
    upgrade(f"sqlite:///{path}")
    engine = create_engine_for(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with engine.begin() as connection:
            # Only a read so far, yet another writer is already locked out: no
            # process can later fail to upgrade its read lock (SQLITE_BUSY).
            connection.exec_driver_sql("SELECT count(*) FROM runs").scalar()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_in_memory_sqlite_shares_one_database(tmp_path: Path) -> None:
    engine = create_engine_for("sqlite://")
    upgrade(engine)
    store = SqlStore(engine)
    assert store.list_runs() == []
    with engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
    assert "runs" in tables
    engine.dispose()
