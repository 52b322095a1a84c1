"""Plain-Python baselines: how fast asyncio alone runs a shape, without and with durable state.

The engine's benchmark figures are reported beside these, so a reader sees its
overhead as a ratio (DESIGN.md, "Performance"). Both baselines do what a lean
hand-written scheduler would do and nothing more:

* :func:`run_asyncio_memory` keeps readiness in memory: a counter of
  unfinished dependencies per task and a list of dependents, so a completion
  touches only its successors. Each ready task is an asyncio task awaiting
  :func:`benchmarks.workloads.noop`.
* :func:`run_asyncio_durable` adds the durability rule of DESIGN.md: every
  transition is committed before its consequences happen. One transaction per
  loop tick (group commit) records the tasks that finished since the last tick
  as ``succeeded`` and the tasks they released as ``running``; only after the
  commit are those tasks started. It runs on SQLite (``sqlite3``, WAL,
  ``synchronous=NORMAL`` as the engine), PostgreSQL (psycopg 3) and
  MySQL/MariaDB (PyMySQL), each through the raw driver with the server's
  default durability, on a ``tasks`` table shaped like the engine's task rows
  (a name key of up to 255 characters, a state, a timestamp).
  :func:`run_asyncio_sqlite` is the SQLite case by file path.

Every statement is fixed text with driver parameters (the state classes'
``*_SQL`` constants); nothing is formatted into SQL.

The clock covers creating the run (the state table's rows, the counters) up to
the last completion (memory) or the last commit (durable). Opening the database
and checking the result are outside it. Both baselines record a trace of
starts, finishes and commits and verify it afterwards (:func:`verify_trace`):
a baseline that cut a corner would make every ratio against it meaningless.
"""

from __future__ import annotations

import asyncio
import graphlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import URL, make_url

from benchmarks.workloads import Shape, noop

#: One thing that happened, in order: (kind, task). Kinds: "start" and "finish"
#: of the task's coroutine; "running" and "succeeded" once that state is committed.
Event = tuple[str, str]


class BaselineError(RuntimeError):
    """A baseline broke its own contract: a task ran twice, too early, or never."""


def run_asyncio_memory(deps: Shape) -> dict[str, float]:
    """Run ``deps`` with asyncio and in-memory dependency counting.

    Returns:
        ``{"tasks", "seconds", "tasks_per_s"}``.

    Raises:
        ValueError: the shape is empty, names an unknown dependency or has a cycle.
        BaselineError: the run violated "every task once, after its dependencies".
    """
    _check_shape(deps)
    events: list[Event] = []
    seconds = asyncio.run(_run_in_memory(deps, events))
    verify_trace(deps, events, durable=False)
    return _result(len(deps), seconds)


def run_asyncio_sqlite(deps: Shape, db_path: str | Path) -> dict[str, float]:
    """Run ``deps`` with asyncio, persisting every transition in SQLite (WAL) by group commit.

    ``db_path`` is scratch: a ``tasks`` table already in it is replaced. The file
    is left behind with every row ``succeeded``, for inspection.

    Returns:
        ``{"tasks", "seconds", "tasks_per_s", "commits"}``; ``commits`` counts the
        loop ticks, each one transaction.

    Raises:
        ValueError: the shape is empty, names an unknown dependency or has a cycle.
        BaselineError: the run violated "every task once, after its dependencies,
            each transition committed before its consequences", or the table does
            not end with every task ``succeeded``.
    """
    return run_asyncio_durable(deps, f"sqlite:///{db_path}")


def run_asyncio_durable(deps: Shape, url: str | URL) -> dict[str, float]:
    """Run ``deps`` with asyncio, committing every tick's transitions to the database at ``url``.

    ``url`` is ``sqlite:///FILE``, ``postgresql://…`` or ``mysql://…`` /
    ``mariadb://…`` (a driver named in it is ignored: the raw driver of the
    backend is used). The database is scratch: a ``tasks`` table already in it
    is replaced, and left behind with every row ``succeeded``.

    Returns:
        ``{"tasks", "seconds", "tasks_per_s", "commits"}``, as :func:`run_asyncio_sqlite`.

    Raises:
        ValueError: the shape is bad, or ``url`` names another backend.
        BaselineError: as :func:`run_asyncio_sqlite`.
    """
    _check_shape(deps)
    events: list[Event] = []
    state = open_state(url)
    try:
        seconds, commits = asyncio.run(_run_durably(deps, state, events))
        verify_trace(deps, events, durable=True)
        states = state.count_states()
    finally:
        state.close()
    if states != {"succeeded": len(deps)}:
        raise BaselineError(f"expected {len(deps)} succeeded rows, found {states}")
    return {**_result(len(deps), seconds), "commits": commits}


class DurableState(Protocol):
    """The baseline's ``tasks`` table on one database, written through the raw driver."""

    def create(self, names: Sequence[str], now: float) -> None:
        """Insert every task as ``pending``, in one transaction."""

    def commit_tick(self, succeeded: Sequence[str], running: Sequence[str], now: float) -> None:
        """Record one tick's transitions in one transaction, and commit it."""

    def count_states(self) -> dict[str, int]:
        """``{state: rows}`` of the table."""

    def close(self) -> None:
        """Close the connection."""


class SqliteState:
    """``sqlite3`` in WAL mode with ``synchronous=NORMAL``, the embedded engine's setting."""

    CREATE_SQL = "CREATE TABLE tasks (name TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL)"
    INSERT_SQL = "INSERT INTO tasks VALUES (?, 'pending', ?)"
    SUCCEEDED_SQL = "UPDATE tasks SET state = 'succeeded', updated = ? WHERE name = ?"
    RUNNING_SQL = "UPDATE tasks SET state = 'running', updated = ? WHERE name = ?"
    COUNT_SQL = "SELECT state, COUNT(*) FROM tasks GROUP BY state"

    def __init__(self, path: str | Path) -> None:
        # isolation_level=None: no implicit transactions; BEGIN/COMMIT below are the only ones.
        self.conn = sqlite3.connect(path, isolation_level=None)
        # WAL + synchronous=NORMAL is the embedded engine's setting: a commit appends to
        # the log without fsync (durable across a process crash, not a power cut).
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("DROP TABLE IF EXISTS tasks")
        self.conn.execute(self.CREATE_SQL)

    def create(self, names: Sequence[str], now: float) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(self.INSERT_SQL, ((name, now) for name in names))
        self.conn.execute("COMMIT")

    def commit_tick(self, succeeded: Sequence[str], running: Sequence[str], now: float) -> None:
        # SQLite runs on the loop thread on purpose: a commit without fsync costs less
        # than a hop to a worker thread, and no-op tasks could not progress meanwhile.
        self.conn.execute("BEGIN")
        self.conn.executemany(self.SUCCEEDED_SQL, [(now, name) for name in succeeded])
        self.conn.executemany(self.RUNNING_SQL, [(now, name) for name in running])
        self.conn.execute("COMMIT")

    def count_states(self) -> dict[str, int]:
        return dict(self.conn.execute(self.COUNT_SQL).fetchall())

    def close(self) -> None:
        self.conn.close()


class PostgresqlState:
    """psycopg 3; each tick is one ``UPDATE … = ANY(%s)`` per state and one commit."""

    CREATE_SQL = (
        "CREATE TABLE tasks (name VARCHAR(255) PRIMARY KEY, state VARCHAR(32) NOT NULL,"
        " updated DOUBLE PRECISION)"
    )
    INSERT_SQL = "INSERT INTO tasks (name, state, updated) VALUES (%s, 'pending', %s)"
    SUCCEEDED_SQL = "UPDATE tasks SET state = 'succeeded', updated = %s WHERE name = ANY(%s)"
    RUNNING_SQL = "UPDATE tasks SET state = 'running', updated = %s WHERE name = ANY(%s)"
    COUNT_SQL = "SELECT state, COUNT(*) FROM tasks GROUP BY state"

    def __init__(self, url: URL) -> None:
        import psycopg

        self.conn = psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database,
        )
        with self.conn.transaction():
            self.conn.execute("DROP TABLE IF EXISTS tasks")
            self.conn.execute(self.CREATE_SQL)
        self.conn.commit()

    def create(self, names: Sequence[str], now: float) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(self.INSERT_SQL, [(name, now) for name in names])
        self.conn.commit()

    def commit_tick(self, succeeded: Sequence[str], running: Sequence[str], now: float) -> None:
        # On the loop thread, like SQLite: the commit is what the tick waits for anyway.
        if succeeded:
            self.conn.execute(self.SUCCEEDED_SQL, (now, list(succeeded)))
        if running:
            self.conn.execute(self.RUNNING_SQL, (now, list(running)))
        self.conn.commit()

    def count_states(self) -> dict[str, int]:
        rows = self.conn.execute(self.COUNT_SQL).fetchall()
        self.conn.commit()
        return {state: count for state, count in rows}

    def close(self) -> None:
        self.conn.close()


class MysqlState:
    """PyMySQL; each tick is one ``UPDATE … IN %s`` per state (a tuple parameter) and one commit."""

    CREATE_SQL = (
        "CREATE TABLE tasks (name VARCHAR(255) NOT NULL PRIMARY KEY,"
        " state VARCHAR(32) NOT NULL, updated DOUBLE)"
        " ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_bin"
    )
    # PyMySQL sends executemany of this INSERT as one multi-row statement.
    INSERT_SQL = "INSERT INTO tasks (name, state, updated) VALUES (%s, 'pending', %s)"
    SUCCEEDED_SQL = "UPDATE tasks SET state = 'succeeded', updated = %s WHERE name IN %s"
    RUNNING_SQL = "UPDATE tasks SET state = 'running', updated = %s WHERE name IN %s"
    COUNT_SQL = "SELECT state, COUNT(*) FROM tasks GROUP BY state"

    def __init__(self, url: URL) -> None:
        import pymysql  # type: ignore[import-untyped]

        self.conn = pymysql.connect(
            host=url.host or "localhost",
            port=url.port or 3306,
            user=url.username or "",
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
            autocommit=False,
        )
        with self.conn.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS tasks")
            cursor.execute(self.CREATE_SQL)
        self.conn.commit()

    def create(self, names: Sequence[str], now: float) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(self.INSERT_SQL, [(name, now) for name in names])
        self.conn.commit()

    def commit_tick(self, succeeded: Sequence[str], running: Sequence[str], now: float) -> None:
        with self.conn.cursor() as cursor:
            if succeeded:
                cursor.execute(self.SUCCEEDED_SQL, (now, tuple(succeeded)))
            if running:
                cursor.execute(self.RUNNING_SQL, (now, tuple(running)))
        self.conn.commit()

    def count_states(self) -> dict[str, int]:
        with self.conn.cursor() as cursor:
            cursor.execute(self.COUNT_SQL)
            rows: Any = cursor.fetchall()
        self.conn.commit()
        return {state: int(count) for state, count in rows}

    def close(self) -> None:
        self.conn.close()


def open_state(url: str | URL) -> DurableState:
    """The :class:`DurableState` of the database at ``url`` (its ``tasks`` table recreated).

    Raises:
        ValueError: ``url`` is not a SQLite, PostgreSQL or MySQL/MariaDB URL.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("the SQLite baseline needs a file: sqlite:///PATH")
        return SqliteState(parsed.database)
    if backend == "postgresql":
        return PostgresqlState(parsed)
    if backend in ("mysql", "mariadb"):
        return MysqlState(parsed)
    raise ValueError(f"no durable baseline for {backend!r} (expected sqlite, postgresql, mysql)")


def verify_trace(deps: Shape, events: Iterable[Event], *, durable: bool) -> None:
    """Check that a trace ran every task of ``deps`` exactly once and in dependency order.

    With ``durable``, also check the commit rule: a task starts only after its
    ``running`` state and all its dependencies' ``succeeded`` states were committed.

    Raises:
        BaselineError: naming the first violation found.
    """
    kinds = ("start", "finish", "running", "succeeded") if durable else ("start", "finish")
    at: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
    for seq, (kind, name) in enumerate(events):
        if name in at[kind]:
            raise BaselineError(f"{name}: {kind} happened twice")
        at[kind][name] = seq
    for kind, seen in at.items():
        if seen.keys() != deps.keys():
            missing, extra = sorted(deps.keys() - seen.keys()), sorted(seen.keys() - deps.keys())
            raise BaselineError(f"{kind}: missing {missing[:5]}, unexpected {extra[:5]}")
    start, finish = at["start"], at["finish"]
    for name, upstream in deps.items():
        if finish[name] < start[name]:
            raise BaselineError(f"{name} finished before it started")
        if durable and at["running"][name] > start[name]:
            raise BaselineError(f"{name} started before its running state was committed")
        for dep in upstream:
            if finish[dep] > start[name]:
                raise BaselineError(f"{name} started before its dependency {dep} finished")
            if durable and at["succeeded"][dep] > start[name]:
                raise BaselineError(f"{name} started before {dep}'s success was committed")


def _check_shape(deps: Shape) -> None:
    if not deps:
        raise ValueError("a shape needs at least one task")
    unknown = sorted({d for up in deps.values() for d in up} - deps.keys())
    if unknown:
        raise ValueError(f"unknown dependencies: {unknown[:5]}")
    try:
        graphlib.TopologicalSorter(deps).prepare()
    except graphlib.CycleError as exc:
        raise ValueError(f"the shape has a cycle: {exc.args[1]}") from exc


def _readiness(deps: Shape) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Unfinished-dependency counters and dependents lists: O(edges) once, O(1) per edge after."""
    remaining = {name: len(upstream) for name, upstream in deps.items()}
    downstream: dict[str, list[str]] = {name: [] for name in deps}
    for name, upstream in deps.items():
        for dep in upstream:
            downstream[dep].append(name)
    return remaining, downstream


def _result(tasks: int, seconds: float) -> dict[str, float]:
    return {"tasks": tasks, "seconds": seconds, "tasks_per_s": tasks / seconds}


async def _execute(name: str, events: list[Event]) -> None:
    events.append(("start", name))
    await noop()


def _spawner(
    events: list[Event], on_done: Callable[[asyncio.Task[None]], None]
) -> tuple[Callable[[str], None], set[asyncio.Task[None]]]:
    # The event loop holds tasks only weakly: keep a reference until each is done.
    alive: set[asyncio.Task[None]] = set()

    def start(name: str) -> None:
        task = asyncio.create_task(_execute(name, events), name=name)
        alive.add(task)
        task.add_done_callback(alive.discard)
        task.add_done_callback(on_done)

    return start, alive


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    if task.cancelled():
        return asyncio.CancelledError(f"{task.get_name()} was cancelled")
    return task.exception()


async def _run_in_memory(deps: Shape, events: list[Event]) -> float:
    began = time.perf_counter()
    remaining, downstream = _readiness(deps)
    left = len(deps)
    all_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_done(task: asyncio.Task[None]) -> None:
        nonlocal left
        if (error := _failure(task)) is not None:
            if not all_done.done():
                all_done.set_exception(BaselineError(f"{task.get_name()} failed: {error!r}"))
            return
        name = task.get_name()
        events.append(("finish", name))
        left -= 1
        for successor in downstream[name]:
            remaining[successor] -= 1
            if remaining[successor] == 0:
                start(successor)
        if left == 0:
            all_done.set_result(None)

    start, _alive = _spawner(events, on_done)
    for name in [name for name, count in remaining.items() if count == 0]:
        start(name)
    await all_done
    return time.perf_counter() - began


async def _run_durably(deps: Shape, state: DurableState, events: list[Event]) -> tuple[float, int]:
    began = time.perf_counter()
    state.create(list(deps), time.time())
    remaining, downstream = _readiness(deps)
    completed: list[str] = []
    failures: list[str] = []
    wake = asyncio.Event()

    def on_done(task: asyncio.Task[None]) -> None:
        # Only note the completion: releasing dependents waits for the next commit.
        if (error := _failure(task)) is not None:
            failures.append(f"{task.get_name()} failed: {error!r}")
        else:
            events.append(("finish", task.get_name()))
            completed.append(task.get_name())
        wake.set()

    start, alive = _spawner(events, on_done)
    ready = [name for name, count in remaining.items() if count == 0]
    left, commits = len(deps), 0
    try:
        while True:
            finished, completed = completed, []
            for name in finished:
                for successor in downstream[name]:
                    remaining[successor] -= 1
                    if remaining[successor] == 0:
                        ready.append(successor)
            # One transaction per tick: the successes gathered since the last tick and
            # the starts they allow.
            state.commit_tick(finished, ready, time.time())
            commits += 1
            events.extend(("succeeded", name) for name in finished)
            events.extend(("running", name) for name in ready)
            left -= len(finished)
            if left == 0:
                return time.perf_counter() - began, commits
            # Committed: now, and only now, the consequences.
            for name in ready:
                start(name)
            ready = []
            await wake.wait()
            wake.clear()
            if failures:
                raise BaselineError("; ".join(failures))
    finally:
        for task in alive:
            task.cancel()
