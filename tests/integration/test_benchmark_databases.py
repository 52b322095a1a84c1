"""The benchmark's durable baseline and scratch databases on real SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from benchmarks import baselines, databases, workloads
from tests.conftest import SERVERS, url_text
from tideflow.storage.database import parse_url

DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def _states(url: str) -> dict[str, int]:
    engine = sa.create_engine(parse_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT state, COUNT(*) FROM tasks GROUP BY state")
            return {state: int(count) for state, count in rows}
    finally:
        engine.dispose()


def test_the_durable_baseline_commits_once_per_tick(empty_database_url: str) -> None:
    fan_out = workloads.fan_out(width=10)
    assert baselines.run_asyncio_durable(fan_out, empty_database_url)["commits"] == 4
    assert _states(empty_database_url) == {"succeeded": 12}
    # Re-running replaces the table.
    assert baselines.run_asyncio_durable(DIAMOND, empty_database_url)["commits"] == 4
    assert _states(empty_database_url) == {"succeeded": 4}


def test_a_failing_task_fails_the_baseline_and_closes_the_connection(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(baselines, "noop", boom)
    with pytest.raises(baselines.BaselineError, match="boom"):
        baselines.run_asyncio_durable(DIAMOND, empty_database_url)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgresql", marks=pytest.mark.postgresql),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_a_scratch_database_is_created_and_dropped(kind: str) -> None:
    server = SERVERS[kind]
    server.check()
    target = databases.parse_target(url_text(server.admin_url))
    with databases.scratch_database(target) as url:
        name = sa.make_url(url).database
        assert name is not None and name.startswith("tideflow_bench_")
        baselines.run_asyncio_durable(DIAMOND, url)
        assert _states(url) == {"succeeded": 4}
    engine = sa.create_engine(server.admin_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            listing = (
                "SELECT datname FROM pg_database" if kind == "postgresql" else "SHOW DATABASES"
            )
            names = set(connection.exec_driver_sql(listing).scalars())
        assert names and name not in names
    finally:
        engine.dispose()
