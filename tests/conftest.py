"""Shared fixtures: a fresh, empty database per test on SQLite, PostgreSQL and MariaDB.

``database_url`` is parametrized over the three backends; PostgreSQL and MySQL
parameters carry the ``postgresql`` / ``mysql`` markers, so ``-m "not mysql"``
deselects a server. A server database is created per test under a random name
(safe under pytest-xdist) and dropped afterwards. An unreachable server skips its
tests locally and fails them when ``CI=true``, so CI never passes by skipping.

``any_store`` adds ``tideflow.testing.MemoryStore`` to the three: the tests of the
``Store`` contract run on it (their modules override ``store`` with it), while
tests of SQL behaviour keep ``store`` / ``database_url``.

Factory fixtures (``make_workflow``, ``make_task``, ``make_run``) build the
records the storage tests write.

Server addresses can be overridden with ``TIDEFLOW_TEST_POSTGRESQL_URL`` and
``TIDEFLOW_TEST_MYSQL_URL`` (administrative URLs: the database in them is only
used to connect; the test databases are created next to it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tideflow.engine.ports import RunRecord, Store, TaskRecord
from tideflow.model import DesiredState, RunPhase, TaskPhase, Workflow
from tideflow.storage.migrating import upgrade
from tideflow.storage.store import SqlStore
from tideflow.testing import MemoryStore


@dataclass(frozen=True)
class Server:
    """A database server that tests create and drop databases on."""

    kind: str
    admin_url: sa.URL

    def _admin(self) -> sa.Engine:
        return sa.create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def check(self) -> None:
        """Fail or skip the test (see the module docstring) if the server is down."""
        engine = self._admin()
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except sa.exc.OperationalError as error:
            where = f"{self.admin_url.host}:{self.admin_url.port}"
            reason = f"{self.kind} server at {where} is unreachable: {error.orig}"
            if os.environ.get("CI") == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        finally:
            engine.dispose()

    def create(self, name: str) -> sa.URL:
        engine = self._admin()
        try:
            with engine.connect() as connection:
                if self.kind == "postgresql":
                    connection.exec_driver_sql(
                        f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"
                    )
                else:
                    connection.exec_driver_sql(
                        f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                    )
        finally:
            engine.dispose()
        return self.admin_url.set(database=name)

    def drop(self, name: str) -> None:
        engine = self._admin()
        try:
            with engine.connect() as connection:
                # FORCE: a test that failed half-way may leave a connection behind.
                force = " WITH (FORCE)" if self.kind == "postgresql" else ""
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        finally:
            engine.dispose()


SERVERS = {
    "postgresql": Server(
        "postgresql",
        sa.make_url(
            os.environ.get(
                "TIDEFLOW_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
            )
        ),
    ),
    "mysql": Server(
        "mysql",
        sa.make_url(
            os.environ.get(
                "TIDEFLOW_TEST_MYSQL_URL",
                "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
            )
        ),
    ),
}


def url_text(url: sa.URL) -> str:
    """The URL as a string a ``Store`` accepts (with any password left in)."""
    return url.render_as_string(hide_password=False)


DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database of ``kind`` with no tables, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'tideflow.db'}"
        return
    server = SERVERS[kind]
    server.check()
    name = f"tf_{uuid.uuid4().hex[:16]}"
    url = server.create(name)
    try:
        yield url_text(url)
    finally:
        server.drop(name)


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database with no tables (not migrated)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """The URL of a fresh database migrated to the latest schema, and empty."""
    upgrade(empty_database_url)
    return empty_database_url


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    """A ``SqlStore`` on a fresh migrated database; its connections are closed afterwards."""
    instance = SqlStore.from_url(database_url)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(params=[pytest.param("memory", id="memory"), *DATABASES])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty ``Store`` of every implementation: ``MemoryStore``, and
    ``SqlStore`` on each database. Tests of the ``Store`` contract use it (a
    module of them overrides ``store`` with it, so ``make_run`` follows);
    tests of SQL behaviour (migrations, drivers, connections racing) use ``store``."""
    if request.param == "memory":
        yield MemoryStore()
        return
    with fresh_database(request.param, tmp_path) as url:
        upgrade(url)
        instance = SqlStore.from_url(url)
        try:
            yield instance
        finally:
            instance.close()


# -- factories ---------------------------------------------------------------------


def _workflow(name: str = "daily-bars", namespace: str = "default", **spec: Any) -> Workflow:
    document: dict[str, Any] = {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "tasks": [
                {"name": "list-symbols", "function": "examples.quant:list_symbols"},
                {
                    "name": "fetch-bars",
                    "function": "examples.quant:fetch_bars",
                    "dependsOn": ["list-symbols"],
                    "forEach": "{{ tasks['list-symbols'].output }}",
                },
            ],
            **spec,
        },
    }
    return Workflow.model_validate(document)


def _task(
    name: str, phase: TaskPhase = TaskPhase.PENDING, *, run_id: int = 0, **fields: Any
) -> TaskRecord:
    """A task instance; ``fetch-bars[3]`` is child 3 of spec task ``fetch-bars``."""
    spec_name, _, rest = name.partition("[")
    index = int(rest.rstrip("]")) if rest else None
    return TaskRecord(run_id, name, spec_name, index, phase, **fields)


class MakeRun(Protocol):
    def __call__(
        self,
        name: str = ...,
        namespace: str = ...,
        *,
        tasks: Sequence[TaskRecord] | None = ...,
        flow: Workflow | None = ...,
        params: dict[str, Any] | None = ...,
        phase: RunPhase = ...,
        created_at: Any = ...,
    ) -> RunRecord: ...


@pytest.fixture
def make_workflow() -> Callable[..., Workflow]:
    """Build a valid two-task Workflow (``list-symbols`` -> fan-out ``fetch-bars``)."""
    return _workflow


@pytest.fixture
def make_task() -> Callable[..., TaskRecord]:
    """Build a TaskRecord from its instance name."""
    return _task


@pytest.fixture
def make_run(store: Store) -> MakeRun:
    """Create a run (by default with the workflow's two initial tasks) in ``store``."""

    def make(
        name: str = "daily-bars-1",
        namespace: str = "default",
        *,
        tasks: Sequence[TaskRecord] | None = None,
        flow: Workflow | None = None,
        params: dict[str, Any] | None = None,
        phase: RunPhase = RunPhase.PENDING,
        created_at: Any = None,
    ) -> RunRecord:
        flow = flow or _workflow(namespace=namespace)
        record = RunRecord(
            id=0,
            namespace=namespace,
            name=name,
            workflow_name=flow.metadata.name,
            workflow=flow,
            params={"trade_date": "2026-11-30"} if params is None else params,
            desired_state=DesiredState.RUNNING,
            phase=phase,
            created_at=created_at,
        )
        if tasks is None:
            tasks = [_task("list-symbols"), _task("fetch-bars")]
        return store.create_run(record, tasks)

    return make
