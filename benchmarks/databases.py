"""The databases ``make bench`` measures on, and the scratch databases it creates there.

``--db`` takes ``sqlite`` (the default: a file in a fresh temporary directory)
or a **server URL**: ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`` or
``mysql://…`` / ``mariadb://…``. The database named in a server URL is only
used to connect: every measurement runs in a scratch database the benchmark
creates next to it under a random name (``tideflow_bench_<hex>``), and drops
afterwards, even when the measurement fails, so no user data is ever read or
written. The user of the URL needs the right to create databases (as the test
suite's, see ``tests/conftest.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tideflow.storage.database import parse_url, safe_url

#: Backends of ``--db`` URLs, by the name SQLAlchemy gives them.
KINDS = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


@dataclass(frozen=True)
class Target:
    """One database ``make bench`` measures on."""

    #: ``sqlite``, ``postgresql`` or ``mysql`` (MySQL and MariaDB).
    kind: str
    #: The name in the results table (``sqlite``, ``postgresql``, ``mariadb``…).
    label: str
    #: The server URL given with ``--db`` (driver filled in); ``None`` for SQLite.
    server: sa.URL | None = None

    def describe(self) -> str:
        """The target for messages: the label and, for a server, its URL without password."""
        return self.label if self.server is None else f"{self.label} ({safe_url(self.server)})"


def parse_target(text: str) -> Target:
    """Parse one ``--db`` value.

    Raises:
        ValueError: not ``sqlite`` nor a PostgreSQL/MySQL/MariaDB URL with a host.
    """
    if text in ("sqlite", "sqlite://"):
        return Target("sqlite", "sqlite")
    try:
        url = parse_url(text)
    except Exception as error:  # StorageError: the text may hold a password; not echoed
        raise ValueError(
            "not a database URL; expected sqlite, postgresql://USER@HOST[:PORT]/DB "
            "or mysql://USER@HOST[:PORT]/DB"
        ) from error
    backend = url.get_backend_name()
    if backend == "sqlite":
        raise ValueError(
            "SQLite is measured in a temporary directory: write --db sqlite, not a file URL"
        )
    if backend not in KINDS:
        raise ValueError(f"unsupported database {backend!r}; expected sqlite, postgresql or mysql")
    if not url.host:
        raise ValueError(f"{safe_url(url)}: a server URL needs a host")
    return Target(KINDS[backend], backend, url)


def parse_targets(values: list[str] | None) -> list[Target]:
    """Parse every ``--db`` value (``sqlite`` when none), giving repeated labels a suffix."""
    targets = [parse_target(value) for value in values or ["sqlite"]]
    seen: dict[str, int] = {}
    labelled: list[Target] = []
    for target in targets:
        seen[target.label] = seen.get(target.label, 0) + 1
        if seen[target.label] > 1:
            target = Target(target.kind, f"{target.label}#{seen[target.label]}", target.server)
        labelled.append(target)
    return labelled


def _admin(server: sa.URL) -> sa.Engine:
    return sa.create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")


def server_version(target: Target) -> str:
    """The server's version string (SQLite's library version for SQLite).

    Raises:
        sqlalchemy.exc.OperationalError: the server is unreachable.
    """
    if target.server is None:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    engine = _admin(target.server)
    try:
        with engine.connect() as connection:
            version = str(connection.exec_driver_sql("SELECT VERSION()").scalar())
    finally:
        engine.dispose()
    # PostgreSQL's is a sentence ("PostgreSQL 15.2 (Debian …) on x86_64…, 64-bit").
    return " ".join(version.split()[:2]) if target.kind == "postgresql" else version


def relabel(target: Target, version: str) -> Target:
    """A ``mysql://`` target whose server says it is MariaDB is labelled ``mariadb``."""
    if target.kind == "mysql" and "mariadb" in version.lower() and target.label.startswith("mysql"):
        return Target(target.kind, "mariadb" + target.label[len("mysql") :], target.server)
    return target


@contextmanager
def scratch_database(target: Target) -> Iterator[str]:
    """Create an empty database for one measurement; yield its URL (password included).

    SQLite: ``bench.db`` in a fresh temporary directory. A server: a database named
    ``tideflow_bench_<random hex>``, dropped on exit.
    """
    if target.server is None:
        with TemporaryDirectory(prefix="tideflow-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    # The name is ours (hex digits), never user input; CREATE DATABASE takes no parameters.
    name = f"tideflow_bench_{uuid.uuid4().hex[:12]}"
    if target.kind == "postgresql":
        create = f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
        drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    else:
        create = f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        drop = f"DROP DATABASE IF EXISTS {name}"
    engine = _admin(target.server)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(create)
        try:
            yield target.server.set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as connection:
                connection.exec_driver_sql(drop)
    finally:
        engine.dispose()
