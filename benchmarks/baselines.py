"""Plain-Python baselines: how fast asyncio alone runs a shape, without and with durable state.

The engine's benchmark figures are reported beside these, so a reader sees its
overhead as a ratio (DESIGN.md, "Performance"). Both baselines do what a lean
hand-written scheduler would do and nothing more:

* :func:`run_asyncio_memory` keeps readiness in memory: a counter of
  unfinished dependencies per task and a list of dependents, so a completion
  touches only its successors. Each ready task is an asyncio task awaiting
  :func:`benchmarks.workloads.noop`.
* :func:`run_asyncio_sqlite` adds the durability rule of DESIGN.md: every
  transition is committed before its consequences happen. One SQLite
  transaction per loop tick (group commit) records the tasks that finished
  since the last tick as ``succeeded`` and the tasks they released as
  ``running``; only after the commit are those tasks started.

The clock covers creating the run (the state table's rows, the counters) up to
the last completion (memory) or the last commit (SQLite). Opening the database
and checking the result are outside it. Both baselines record a trace of
starts, finishes and commits and verify it afterwards (:func:`verify_trace`):
a baseline that cut a corner would make every ratio against it meaningless.
"""

from __future__ import annotations

import asyncio
import graphlib
import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path

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
    _check_shape(deps)
    events: list[Event] = []
    with closing(_open_database(db_path)) as conn:
        seconds, commits = asyncio.run(_run_durably(deps, conn, events))
    verify_trace(deps, events, durable=True)
    with closing(sqlite3.connect(db_path)) as conn:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall())
    if states != {"succeeded": len(deps)}:
        raise BaselineError(f"expected {len(deps)} succeeded rows, found {states}")
    return {**_result(len(deps), seconds), "commits": commits}


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


def _open_database(db_path: str | Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; BEGIN/COMMIT below are the only ones.
    conn = sqlite3.connect(db_path, isolation_level=None)
    # WAL + synchronous=NORMAL is the embedded engine's setting: a commit appends to
    # the log without fsync (durable across a process crash, not a power cut).
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("DROP TABLE IF EXISTS tasks")
    conn.execute("CREATE TABLE tasks (name TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL)")
    return conn


async def _run_durably(
    deps: Shape, conn: sqlite3.Connection, events: list[Event]
) -> tuple[float, int]:
    began = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tasks VALUES (?, 'pending', ?)", ((name, time.time()) for name in deps)
    )
    conn.execute("COMMIT")
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
            # the starts they allow. SQLite runs on the loop thread on purpose: a commit
            # without fsync costs less than a hop to a worker thread, and no-op tasks
            # could not make progress meanwhile anyway.
            now = time.time()
            conn.execute("BEGIN")
            conn.executemany(
                "UPDATE tasks SET state = 'succeeded', updated = ? WHERE name = ?",
                [(now, name) for name in finished],
            )
            conn.executemany(
                "UPDATE tasks SET state = 'running', updated = ? WHERE name = ?",
                [(now, name) for name in ready],
            )
            conn.execute("COMMIT")
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
