"""The engine's commit on its held connection (``tideflow.storage.hotpath``).

The statements compiled once per dialect must write exactly what the SQLAlchemy
path (``committing.apply`` on a ``Connection``) writes, on every database; the
held connection must survive the server dropping it; and PostgreSQL's listener
must stop at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import pymysql
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.dialects.sqlite import pysqlite

from tideflow.engine.ports import Batch, LogRecord, RunUpdate, TaskRecord
from tideflow.errors import StorageError
from tideflow.model import RunPhase, TaskPhase, Workflow
from tideflow.storage import committing, hotpath, rows
from tideflow.storage.database import SQLITE_BUSY_TIMEOUT_MS, create_engine_for
from tideflow.storage.store import SqlStore

if TYPE_CHECKING:
    from tests.conftest import MakeRun

T0 = datetime(2026, 11, 30, 8, 30, 2, 123456, tzinfo=UTC)
UNTIL = T0 + timedelta(seconds=30)
OWNER = "engine-a"


def _batch(run_id: int, *, release: bool = False) -> Batch:
    started = T0 + timedelta(microseconds=7)
    return Batch(
        owner=OWNER,
        lease_until=UNTIL,
        run_updates=[
            RunUpdate(run_id, RunPhase.RUNNING, "going", started, None, observed_generation=1)
        ],
        task_inserts=[
            TaskRecord(
                run_id, "fetch-bars[0]", "fetch-bars", 0, TaskPhase.QUEUED, item={"s": "ÄB€"}
            ),
            TaskRecord(run_id, "fetch-bars[1]", "fetch-bars", 1, TaskPhase.PENDING, item=[1]),
        ],
        task_updates=[
            TaskRecord(
                run_id,
                "list-symbols",
                "list-symbols",
                None,
                TaskPhase.SUCCEEDED,
                attempt=1,
                output={"symbols": ["a", "b"], "n": 1.5},
                started_at=started,
                finished_at=started + timedelta(seconds=1),
            ),
            TaskRecord(
                run_id,
                "fetch-bars[0]",
                "fetch-bars",
                0,
                TaskPhase.RETRYING,
                attempt=1,
                error="boom",
                not_before=T0 + timedelta(hours=1),
                attempt_base=2,
                item={"s": "ÄB€"},
            ),
        ],
        logs=[
            LogRecord(run_id, "list-symbols", 1, "stdout", "hello\n", T0),
            LogRecord(run_id, "list-symbols", 1, "stderr", "50% done ✓", T0),
        ],
        release=[run_id] if release else [],
    )


def _stored(engine: sa.Engine, run_id: int) -> dict[str, Any]:
    """What is stored for a run, as the driver returns it (no type processing)."""
    with engine.connect() as connection:

        def read(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in connection.execute(sa.text(sql), {"r": run_id})]

        return {
            "run": read(
                "SELECT phase, message, started_at, finished_at, observed_generation,"
                " owner, lease_expires_at FROM runs WHERE id = :r"
            ),
            "tasks": read(
                "SELECT seq, name, task, idx, item, phase, attempt, output, error, started_at,"
                " finished_at, not_before, attempt_base FROM task_instances"
                " WHERE run_id = :r ORDER BY seq"
            ),
            "logs": read(
                "SELECT task, attempt, stream, text, created_at FROM task_logs"
                " WHERE run_id = :r ORDER BY id"
            ),
            "slots": read("SELECT task, pool, owner FROM pool_slots WHERE run_id = :r"),
        }


@pytest.mark.parametrize("release", [False, True], ids=["keep", "release"])
def test_the_held_connection_writes_what_the_sqlalchemy_path_writes(
    store: SqlStore, make_run: MakeRun, release: bool
) -> None:
    by_sqlalchemy = make_run("by-sqlalchemy")
    held = make_run("held")
    for run in (by_sqlalchemy, held):
        assert store.claim_run(run.id, OWNER, T0, UNTIL) is not None
        assert store.acquire_slots(OWNER, "api", [(run.id, "list-symbols")], T0)
        store.set_pool_capacity("api", 10)

    old = _batch(by_sqlalchemy.id, release=release)
    old.slot_releases = [(by_sqlalchemy.id, "list-symbols")]
    with store.engine.begin() as connection:
        assert committing.apply(connection, committing.prepare(old)) == set()
    new = _batch(held.id, release=release)
    new.slot_releases = [(held.id, "list-symbols")]
    assert store.commit(new) == set()

    expected = _stored(store.engine, by_sqlalchemy.id)
    assert expected["tasks"] and expected["logs"] and not expected["slots"]
    assert _stored(store.engine, held.id) == expected
    # And a second commit numbers new task instances after the existing ones.
    more = TaskRecord(held.id, "fetch-bars[2]", "fetch-bars", 2, TaskPhase.PENDING)
    if not release:
        assert store.commit(Batch(OWNER, UNTIL, task_inserts=[more])) == set()
        assert [t.name for t in store.list_tasks(held.id)][-1] == "fetch-bars[2]"


def test_a_lost_runs_writes_are_dropped_and_the_rest_committed(
    store: SqlStore, make_run: MakeRun
) -> None:
    mine, theirs = make_run("mine"), make_run("theirs")
    assert store.claim_run(mine.id, OWNER, T0, UNTIL) is not None
    assert store.claim_run(theirs.id, "engine-b", T0, UNTIL) is not None
    batch = _batch(mine.id)
    for part in (_batch(theirs.id),):
        batch.task_updates += part.task_updates
        batch.logs += part.logs
        batch.run_updates += part.run_updates
    assert store.commit(batch) == {theirs.id}
    assert store.get_run_by_id(mine.id).phase is RunPhase.RUNNING
    assert store.get_run_by_id(theirs.id).phase is RunPhase.PENDING
    assert store.get_logs(theirs.id) == []
    assert store.get_run_by_id(theirs.id).lease_expires_at == UNTIL  # not renewed by us


def test_a_naive_datetime_is_a_storage_error_and_nothing_is_written(
    store: SqlStore, make_run: MakeRun
) -> None:
    run = make_run()
    assert store.claim_run(run.id, OWNER, T0, UNTIL) is not None
    naive = LogRecord(run.id, "list-symbols", 1, "log", "x", datetime(2026, 1, 1))
    with pytest.raises(StorageError, match="naive datetime"):
        store.commit(Batch(OWNER, UNTIL, logs=[naive]))
    assert store.get_logs(run.id) == []
    good = LogRecord(run.id, "list-symbols", 1, "log", "x", T0)
    assert store.commit(Batch(OWNER, UNTIL, logs=[good])) == set()
    assert [log.text for log in store.get_logs(run.id)] == ["x"]


@pytest.mark.parametrize(
    ("dialect", "positional"),
    [
        (pysqlite.dialect(), True),
        (psycopg.dialect(), False),  # type: ignore[no-untyped-call]
        (pymysql.dialect(), True),
    ],
    ids=["sqlite", "postgresql", "mysql"],
)
def test_statements_bind_in_each_paramstyle(dialect: sa.Dialect, positional: bool) -> None:
    statements = hotpath.Statements.compile(dialect)
    bound = statements.fence.bind({"b_id": 7, "b_owner": "e", "b_lease": UNTIL})
    naive_utc = UNTIL.replace(tzinfo=None)
    if positional:
        assert isinstance(bound, tuple) and bound[1:] == (7, "e")
        assert bound[0] in (naive_utc, naive_utc.isoformat(" "))  # SQLite stores text
    else:
        assert bound == {"b_lease": naive_utc, "b_id": 7, "b_owner": "e"}
    with pytest.raises(ValueError, match="expanding"):
        hotpath.compile_statement(
            sa.select(sa.literal(1)).where(sa.column("x").in_([1, 2])), dialect
        )


def _drop_other_connections(store: SqlStore) -> None:
    """Kill every server connection to the store's database except the one doing it."""
    admin = sa.create_engine(store.engine.url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as connection:
            if store.engine.dialect.name == "postgresql":
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            else:
                ids = connection.scalars(
                    sa.text(
                        "SELECT id FROM information_schema.processlist"
                        " WHERE db = database() AND id <> connection_id()"
                    )
                ).all()
                for thread_id in ids:
                    connection.execute(sa.text(f"KILL {int(thread_id)}"))
    finally:
        admin.dispose()


def test_a_connection_the_server_dropped_is_replaced_and_the_commit_goes_through(
    store: SqlStore, make_run: MakeRun, caplog: pytest.LogCaptureFixture
) -> None:
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no server to drop the connection")
    run = make_run()
    assert store.claim_run(run.id, OWNER, T0, UNTIL) is not None
    first = LogRecord(run.id, "list-symbols", 1, "log", "before", T0)
    assert store.commit(Batch(OWNER, UNTIL, logs=[first])) == set()
    _drop_other_connections(store)
    # Found broken on the first statement, before COMMIT: run again on a new connection.
    second = LogRecord(run.id, "list-symbols", 1, "log", "after", T0)
    with caplog.at_level("INFO", logger="tideflow.storage.hotpath"):
        assert store.commit(Batch(OWNER, UNTIL, logs=[second])) == set()
    assert "retrying after a lost connection" in caplog.text
    assert [log.text for log in store.get_logs(run.id)] == ["before", "after"]


def test_a_workflow_snapshot_is_parsed_once(store: SqlStore, make_run: MakeRun) -> None:
    run = make_run()
    claimed = store.claim_run(run.id, OWNER, T0, UNTIL)
    assert claimed is not None
    assert store.get_run_by_id(run.id).workflow is claimed.workflow
    text = rows.dump_workflow(claimed.workflow)
    assert rows.load_workflow(text) is rows.load_workflow(text)


def test_a_created_run_shares_the_callers_workflow_when_json_gives_it_back(
    store: SqlStore, make_run: MakeRun, make_workflow: Callable[..., Workflow]
) -> None:
    flow = make_workflow("shared-snapshot")
    run = make_run(flow=flow)
    claimed = store.claim_run(run.id, OWNER, T0, UNTIL)
    assert claimed is not None
    assert claimed.workflow is flow  # not a second copy of it
    # A tuple comes back from JSON as a list: the run gets what was stored.
    task = {"name": "a", "function": "examples.quant:list_symbols", "args": {"span": (1, 2)}}
    odd = make_workflow("tuple-args", tasks=[task])
    loaded = store.get_run_by_id(make_run("tuple-args-1", flow=odd).id).workflow
    assert loaded is not odd
    assert loaded.spec.tasks[0].args == {"span": [1, 2]}


def test_the_listener_stops_at_once(store: SqlStore) -> None:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL notifies")
    stop = store.subscribe(lambda: None)
    assert stop is not None
    time.sleep(0.3)  # listening by now
    started = time.perf_counter()
    stop()
    assert time.perf_counter() - started < 0.5


def test_sqlite_commits_inline_unless_another_connection_holds_the_write_lock(
    store: SqlStore, make_run: MakeRun, database_url: str
) -> None:
    run = make_run()
    assert store.claim_run(run.id, OWNER, T0, UNTIL) is not None
    if store.engine.dialect.name != "sqlite":
        # A server's commit waits for the network and its log flush: never on the loop.
        assert store.commit_inline(_batch(run.id)) is None
        assert store.get_run_by_id(run.id).phase is RunPhase.PENDING
        return
    other = sa.create_engine(database_url)
    try:
        with other.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            started = time.monotonic()
            assert store.commit_inline(_batch(run.id)) is None  # declined, not waited
            assert time.monotonic() - started < 5.0  # well short of the 10 s busy timeout
            connection.exec_driver_sql("ROLLBACK")
    finally:
        other.dispose()
    assert store.get_run_by_id(run.id).phase is RunPhase.PENDING  # nothing was written
    assert store.commit_inline(_batch(run.id)) == set()
    assert store.get_run_by_id(run.id).phase is RunPhase.RUNNING
    # The held connection waits for the lock again on the DB thread's commits.
    assert (
        store.commit(Batch(OWNER, UNTIL, run_updates=[RunUpdate(run.id, RunPhase.PAUSED)])) == set()
    )


def test_sqlite_inline_commits_leave_no_zero_busy_timeout_behind(
    store: SqlStore, make_run: MakeRun
) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite commits inline")
    run = make_run()
    assert store.claim_run(run.id, OWNER, T0, UNTIL) is not None

    def held_timeout() -> int:
        held = store._held
        assert held is not None and held._proxy is not None
        connection: Any = held._proxy.dbapi_connection
        return int(connection.execute("PRAGMA busy_timeout").fetchone()[0])

    def batch(phase: RunPhase) -> Batch:
        return Batch(OWNER, UNTIL, run_updates=[RunUpdate(run.id, phase)])

    assert store.commit_inline(batch(RunPhase.RUNNING)) == set()
    assert store.commit_inline(batch(RunPhase.RUNNING)) == set()
    assert held_timeout() == 0  # kept between inline commits
    assert store.commit(batch(RunPhase.PAUSED)) == set()
    assert held_timeout() == SQLITE_BUSY_TIMEOUT_MS  # a commit that may wait, waits
    assert store.commit_inline(batch(RunPhase.RUNNING)) == set()
    assert store.get_run_by_id(run.id).phase is RunPhase.RUNNING
    store.close()  # the held connection goes back to the pool with the usual timeout
    with store.engine.connect() as connection:
        timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert timeout == SQLITE_BUSY_TIMEOUT_MS


def test_sqlite_commits_renew_a_lease_only_once_half_of_it_is_gone(
    store: SqlStore, make_run: MakeRun, database_url: str
) -> None:
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the servers' fence renews at every commit")
    mine, theirs = make_run("mine"), make_run("theirs")
    assert store.claim_run(mine.id, OWNER, T0, UNTIL) is not None  # until T0 + 30 s
    assert store.claim_run(theirs.id, "engine-b", T0, UNTIL) is not None

    def commit_at(seconds: int, run_id: int, phase: RunPhase) -> set[int]:
        """A commit at T0 + ``seconds`` granting the 30 s lease from then."""
        at = SqlStore(
            create_engine_for(database_url), clock=lambda: T0 + timedelta(seconds=seconds)
        )
        try:
            until = T0 + timedelta(seconds=seconds + 30)
            return at.commit(Batch(OWNER, until, run_updates=[RunUpdate(run_id, phase)]))
        finally:
            at.close()

    # At T0 + 10 s, 20 of the 30 s are left: not due, only ownership is checked.
    assert commit_at(10, mine.id, RunPhase.RUNNING) == set()
    assert store.get_run_by_id(mine.id).lease_expires_at == UNTIL
    assert store.get_run_by_id(mine.id).phase is RunPhase.RUNNING
    assert commit_at(10, theirs.id, RunPhase.RUNNING) == {theirs.id}
    assert store.get_run_by_id(theirs.id).phase is RunPhase.PENDING
    # At T0 + 16 s, 14 s are left, less than half a lease: renewed.
    assert commit_at(16, mine.id, RunPhase.PAUSED) == set()
    assert store.get_run_by_id(mine.id).lease_expires_at == T0 + timedelta(seconds=46)
