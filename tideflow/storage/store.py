"""``SqlStore``: the SQL implementation of the engine's ``Store`` protocol.

Front doors build one with :meth:`SqlStore.from_url` and hand it to the engine,
which calls it from a dedicated thread. Every method is one transaction. The
engine's hot path is :meth:`SqlStore.commit`, called once per loop tick with
every transition of that tick, so its writes are batched (``executemany``).

Ownership is compare-and-set on ``runs.owner`` / ``runs.lease_expires_at``:
claims and the fence at the start of each commit are single-row conditional
``UPDATE`` statements whose row count says whether they applied (on SQLite the
commit's fence reads ownership and renews only a lease that is half gone:
see :func:`tideflow.storage.hotpath.apply`). On PostgreSQL
and MariaDB the row lock taken by that ``UPDATE`` also serialises the rest of
the transaction against a competing engine; on SQLite every transaction holds
the write lock from its ``BEGIN IMMEDIATE``. Transactions that lose a deadlock
race (MariaDB gap locks, PostgreSQL lock cycles) are run again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    and_,
    delete,
    exc,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.pool import StaticPool

from tideflow.engine.ports import (
    ApplyResult,
    Batch,
    LogRecord,
    PoolRecord,
    RunRecord,
    TaskRecord,
    WorkflowRecord,
    utcnow,
)
from tideflow.errors import (
    ConflictError,
    NotFoundError,
    Problem,
    StorageError,
    ValidationError,
)
from tideflow.model import (
    FINISHED_RUN_PHASES,
    DesiredState,
    RunPhase,
    Workflow,
    check_name,
    to_document,
)
from tideflow.model.labels import LabelSelector
from tideflow.storage import committing, hotpath, notifying, pooling, rows
from tideflow.storage.database import (
    connecting_errors,
    create_engine_for,
    is_retryable,
    translating_errors,
)
from tideflow.storage.tables import pool_slots, runs, task_instances, task_logs, workflows

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A transaction that lost a deadlock or serialization race is run again this often.
MAX_ATTEMPTS = 3

#: Ids per ``IN (...)`` list, well below every driver's bound-parameter limit.
CHUNK = 500
#: Task instances per ``INSERT`` when a run is created (each one an executemany).
INSERT_ROWS = 5000

_FINISHED = sorted(phase.value for phase in FINISHED_RUN_PHASES)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK):
        yield unique[start : start + CHUNK]


def _page(query: Select[Any], offset: int) -> Callable[[Connection], Sequence[Row[Any]]]:
    """Work reading one page of ``query`` (``CHUNK`` rows from ``offset``)."""
    return lambda connection: connection.execute(query.limit(CHUNK).offset(offset)).all()


class _CreatedConcurrently(Exception):
    """A concurrent transaction inserted the row this one was about to insert."""


def _unfinished() -> ColumnElement[bool]:
    return runs.c.phase.not_in(_FINISHED)


def _lease_free(now: datetime) -> ColumnElement[bool]:
    """Unowned, or the owner's lease has run out."""
    return or_(
        runs.c.owner.is_(None),
        runs.c.lease_expires_at.is_(None),
        runs.c.lease_expires_at <= now,
    )


class SqlStore:
    """Durable state in SQLite, PostgreSQL or MySQL/MariaDB (see ``tideflow.engine.ports``).

    Args:
        engine: from :func:`~tideflow.storage.database.create_engine_for`; the
            schema must be migrated (:func:`tideflow.storage.migrating.upgrade`).
        clock: the source of ``created_at`` / ``updated_at`` timestamps.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock
        #: The connection :meth:`commit` holds (see :mod:`~tideflow.storage.hotpath`),
        #: opened on first use; every use of it holds ``_held_lock``.
        self._held: hotpath.HeldConnection | None = None
        self._held_lock = threading.Lock()
        # An in-memory SQLite database has one shared connection (StaticPool): the
        # held connection is every other call's too, so it never commits inline.
        self._sqlite = engine.dialect.name == "sqlite"
        self._inline_capable = self._sqlite and not isinstance(engine.pool, StaticPool)

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        """A store on a new engine for ``url`` (the schema must already be migrated)."""
        return cls(create_engine_for(url))

    @property
    def engine(self) -> Engine:
        return self._engine

    def upgrade(self) -> None:
        """Migrate this store's database to the latest schema (``database.auto_migrate``)."""
        from tideflow.storage.migrating import upgrade  # migrating imports tables only

        upgrade(self._engine)

    def close(self) -> None:
        """Close the held connection and the engine's pooled connections."""
        with self._held_lock:
            if self._held is not None:
                self._held.close()
        self._engine.dispose()

    # -- plumbing ----------------------------------------------------------------
    def _transaction(self, doing: str, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction, again if it loses a deadlock race."""
        url = self._engine.url
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with connecting_errors(url):
                connection = self._engine.connect()
            with connection, translating_errors(url, doing):
                try:
                    with connection.begin():
                        return work(connection)
                except exc.DBAPIError as error:
                    if attempt == MAX_ATTEMPTS or not is_retryable(error):
                        raise
                    logger.info(
                        "retrying after a lock conflict",
                        extra={"action": "retry-transaction", "doing": doing, "attempt": attempt},
                    )
        raise AssertionError("unreachable")

    # -- workflows -----------------------------------------------------------------
    def apply_workflow(self, workflow: Workflow) -> ApplyResult:
        document = to_document(workflow)
        manifest = rows.dump_workflow(workflow)
        namespace, name = workflow.metadata.namespace, workflow.metadata.name
        where = and_(workflows.c.namespace == namespace, workflows.c.name == name)

        def work(connection: Connection) -> ApplyResult:
            now = self._clock()
            query = select(workflows.c.id, workflows.c.manifest).where(where).with_for_update()
            row = connection.execute(query).first()
            if row is None:
                try:
                    connection.execute(
                        insert(workflows).values(
                            namespace=namespace,
                            name=name,
                            generation=1,
                            manifest=manifest,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                except exc.IntegrityError as error:
                    raise _CreatedConcurrently from error
                return "created"
            if rows.load_json(row.manifest) == document:
                return "unchanged"
            connection.execute(
                update(workflows)
                .where(workflows.c.id == row.id)
                .values(manifest=manifest, generation=workflows.c.generation + 1, updated_at=now)
            )
            return "configured"

        try:
            return self._transaction("apply workflow", work)
        except _CreatedConcurrently:
            # Another writer created it since our SELECT; now it is an update.
            return self._transaction("apply workflow", work)

    def get_workflow(self, namespace: str, name: str) -> WorkflowRecord:
        query = select(workflows).where(
            workflows.c.namespace == namespace, workflows.c.name == name
        )
        row = self._transaction("read workflow", lambda c: c.execute(query).first())
        if row is None:
            raise self._not_found("workflow", workflows, namespace, name)
        return rows.workflow_from_row(row._mapping)

    def list_workflows(
        self, namespace: str | None = None, *, selector: LabelSelector | None = None
    ) -> list[WorkflowRecord]:
        query = select(workflows).order_by(workflows.c.namespace, workflows.c.name)
        if namespace is not None:
            query = query.where(workflows.c.namespace == namespace)
        found = self._transaction("list workflows", lambda c: c.execute(query).all())
        records = [rows.workflow_from_row(row._mapping) for row in found]
        if selector:
            records = [r for r in records if selector.matches(r.workflow.metadata.labels)]
        return records

    def delete_workflow(self, namespace: str, name: str) -> None:
        where = and_(workflows.c.namespace == namespace, workflows.c.name == name)
        deleted = self._transaction(
            "delete workflow", lambda c: c.execute(delete(workflows).where(where)).rowcount
        )
        if deleted != 1:
            raise self._not_found("workflow", workflows, namespace, name)

    def _not_found(self, kind: str, table: Table, namespace: str, name: str) -> NotFoundError:
        """The error for a missing object, naming the namespaces that do have one of that name."""
        query = select(table.c.namespace).where(table.c.name == name).order_by(table.c.namespace)
        elsewhere = self._transaction(f"find {kind}", lambda c: c.scalars(query).all())
        message = f'{kind} "{name}" not found in namespace {namespace}'
        if elsewhere:
            message += f" (found in: {', '.join(elsewhere)}; use -n {elsewhere[0]})"
        return NotFoundError(message)

    # -- runs ----------------------------------------------------------------------
    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> RunRecord:
        names = [task.name for task in tasks]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            problem = Problem(
                path=f"runs[{run.name}].tasks", message=f"duplicate task names {duplicates}"
            )
            raise ValidationError([problem])
        created = dataclasses.replace(run, created_at=run.created_at or self._clock())
        values = rows.run_values(created)

        def work(connection: Connection) -> int:
            try:
                result = connection.execute(insert(runs).values(values))
            except exc.IntegrityError as error:
                raise ConflictError(
                    f'run "{run.name}" already exists in namespace "{run.namespace}"'
                ) from error
            key = result.inserted_primary_key
            if key is None:  # only for INSERT ... FROM SELECT, never here
                raise StorageError("the database did not report the new run's id")
            run_id = int(key[0])
            # In batches: the rows of 100,000 tasks at once would be the peak memory of a run.
            statement = insert(task_instances)
            for start in range(0, len(tasks), INSERT_ROWS):
                connection.execute(
                    statement,
                    [
                        rows.task_values(tasks[seq], run_id, seq)
                        for seq in range(start, min(start + INSERT_ROWS, len(tasks)))
                    ],
                )
            notifying.notify(connection)
            return run_id

        run_id = self._transaction("create run", work)
        rows.remember_workflow(values["workflow"], run.workflow)
        return dataclasses.replace(created, id=run_id)

    def get_run(self, namespace: str, name: str) -> RunRecord:
        query = select(runs).where(runs.c.namespace == namespace, runs.c.name == name)
        row = self._transaction("read run", lambda c: c.execute(query).first())
        if row is None:
            raise self._not_found("run", runs, namespace, name)
        return rows.run_from_row(row._mapping)

    def get_run_by_id(self, run_id: int) -> RunRecord:
        query = select(runs).where(runs.c.id == run_id)
        row = self._transaction("read run", lambda c: c.execute(query).first())
        if row is None:
            raise NotFoundError(f"run with id {run_id} not found")
        return rows.run_from_row(row._mapping)

    def list_runs(
        self,
        namespace: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        *,
        phases: Sequence[RunPhase] = (),
        selector: LabelSelector | None = None,
    ) -> list[RunRecord]:
        query = select(runs).order_by(runs.c.id.desc())
        if namespace is not None:
            query = query.where(runs.c.namespace == namespace)
        if workflow is not None:
            query = query.where(runs.c.workflow_name == workflow)
        if phases:
            query = query.where(runs.c.phase.in_(sorted({RunPhase(p).value for p in phases})))
        limit = max(0, limit)
        if not selector:
            found = self._transaction("list runs", lambda c: c.execute(query.limit(limit)).all())
            return [rows.run_from_row(row._mapping) for row in found]
        # Labels live in JSON (the run's own and its workflow snapshot's), so a
        # selector is applied here, page by page, until ``limit`` runs match.
        selected: list[RunRecord] = []
        offset = 0
        while len(selected) < limit:
            found = self._transaction("list runs", _page(query, offset))
            selected += [
                record
                for record in (rows.run_from_row(row._mapping) for row in found)
                if selector.matches(record.labels)
            ]
            if len(found) < CHUNK:
                break
            offset += CHUNK
        return selected[:limit]

    def delete_run(self, namespace: str, name: str) -> None:
        def work(connection: Connection) -> bool:
            run_id = connection.scalar(
                select(runs.c.id).where(runs.c.namespace == namespace, runs.c.name == name)
            )
            if run_id is None:
                return False
            # Explicit deletes rather than relying on ON DELETE CASCADE, which
            # SQLite enforces only with its foreign_keys pragma on.
            for table in (task_logs, pool_slots, task_instances):
                connection.execute(delete(table).where(table.c.run_id == run_id))
            connection.execute(delete(runs).where(runs.c.id == run_id))
            return True

        if not self._transaction("delete run", work):
            raise self._not_found("run", runs, namespace, name)

    def list_tasks(self, run_id: int) -> list[TaskRecord]:
        query = (
            select(task_instances)
            .where(task_instances.c.run_id == run_id)
            .order_by(task_instances.c.seq)
        )
        found = self._transaction("list tasks", lambda c: c.execute(query).all())
        return [rows.task_from_row(row._mapping) for row in found]

    def load_tasks(self, run_id: int) -> list[TaskRecord]:
        return self.list_tasks(run_id)

    def get_logs(self, run_id: int, task: str | None = None, *, after: int = 0) -> list[LogRecord]:
        query = (
            select(task_logs)
            .where(task_logs.c.run_id == run_id, task_logs.c.id > after)
            .order_by(task_logs.c.id)
        )
        if task is not None:
            # Fan-out children are named "task[0]", "task[1]", ...
            children = task_logs.c.task.startswith(f"{task}[", autoescape=True)
            query = query.where(or_(task_logs.c.task == task, children))
        found = self._transaction("read logs", lambda c: c.execute(query).all())
        return [rows.log_from_row(row._mapping) for row in found]

    def request_control(
        self,
        run_id: int,
        expected_generation: int,
        desired: DesiredState,
        *,
        reset_tasks: Sequence[TaskRecord] = (),
        reopen: bool = False,
    ) -> bool:
        values: dict[str, Any] = {
            "desired_state": DesiredState(desired).value,
            "generation": runs.c.generation + 1,
        }
        if reopen:
            values.update(phase=RunPhase.PENDING.value, finished_at=None, message=None)
        resets = [committing.task_update_params(task, run_id) for task in reset_tasks]

        def work(connection: Connection) -> bool:
            result = connection.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.generation == expected_generation)
                .values(values)
            )
            if result.rowcount != 1:
                if connection.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                    raise NotFoundError(f"run with id {run_id} not found")
                return False
            if resets:
                connection.execute(committing.UPDATE_TASK, resets)
            notifying.notify(connection)
            return True

        return self._transaction("request control", work)

    # -- the engine ------------------------------------------------------------------
    def claim_run(
        self, run_id: int, owner: str, now: datetime, until: datetime
    ) -> RunRecord | None:
        def work(connection: Connection) -> RunRecord | None:
            result = connection.execute(
                update(runs)
                .where(
                    runs.c.id == run_id,
                    _unfinished(),
                    or_(runs.c.owner == owner, _lease_free(now)),
                )
                .values(owner=owner, lease_expires_at=until)
            )
            if result.rowcount != 1:
                return None
            pooling.forget_run(connection, run_id)
            row = connection.execute(select(runs).where(runs.c.id == run_id)).one()
            return rows.run_from_row(row._mapping)

        return self._transaction("claim run", work)

    def claim_runs(self, owner: str, now: datetime, until: datetime, limit: int) -> list[RunRecord]:
        if limit <= 0:
            return []

        def work(connection: Connection) -> list[RunRecord]:
            candidates = connection.scalars(
                select(runs.c.id)
                .where(_unfinished(), _lease_free(now))
                .order_by(runs.c.id)
                .limit(limit)
            ).all()
            # One conditional UPDATE per candidate, in id order (so competing
            # engines lock rows in the same order and cannot deadlock): a
            # candidate another engine claimed since the SELECT no longer matches.
            claimed = [
                run_id
                for run_id in candidates
                if connection.execute(
                    update(runs)
                    .where(runs.c.id == run_id, _unfinished(), _lease_free(now))
                    .values(owner=owner, lease_expires_at=until)
                ).rowcount
                == 1
            ]
            if not claimed:
                return []
            for run_id in claimed:
                pooling.forget_run(connection, run_id)
            found = connection.execute(
                select(runs).where(runs.c.id.in_(claimed)).order_by(runs.c.id)
            ).all()
            return [rows.run_from_row(row._mapping) for row in found]

        return self._transaction("claim runs", work)

    def renew_leases(self, owner: str, run_ids: Sequence[int], until: datetime) -> set[int]:
        def work(connection: Connection) -> set[int]:
            held: set[int] = set()
            for chunk in _chunks(run_ids):
                mine = and_(runs.c.id.in_(chunk), runs.c.owner == owner)
                connection.execute(update(runs).where(mine).values(lease_expires_at=until))
                held.update(connection.scalars(select(runs.c.id).where(mine)))
            return held

        return self._transaction("renew leases", work) if run_ids else set()

    def read_control(self, run_ids: Sequence[int]) -> dict[int, tuple[DesiredState, int]]:
        def work(connection: Connection) -> dict[int, tuple[DesiredState, int]]:
            control: dict[int, tuple[DesiredState, int]] = {}
            for chunk in _chunks(run_ids):
                query = select(runs.c.id, runs.c.desired_state, runs.c.generation).where(
                    runs.c.id.in_(chunk)
                )
                for run_id, desired, generation in connection.execute(query):
                    control[run_id] = (DesiredState(desired), generation)
            return control

        return self._transaction("read control", work) if run_ids else {}

    def _renew_below(self, batch: Batch) -> datetime | None:
        """SQLite: the commit renews a lease expiring before this (see :func:`hotpath.apply`).

        Halfway between now and the lease the batch grants: after a commit every
        run it touched still has at least half a lease to run (the engine's own
        renewals come every third of one). None on the servers, whose fence
        always renews: their unchanged large values are not rewritten.
        """
        if not self._sqlite:
            return None
        now = self._clock()
        if batch.lease_until <= now:
            return batch.lease_until
        return batch.lease_until - (batch.lease_until - now) / 2

    def commit(self, batch: Batch) -> set[int]:
        if not batch:
            return set()
        # Encoded before the transaction opens: a bad output fails fast, holding no locks.
        prepared = committing.prepare(batch)
        renew_below = self._renew_below(batch)
        # The hot path: statements compiled once, on a DBAPI connection held for it.
        with self._held_lock:
            if self._held is None:
                self._held = hotpath.HeldConnection(self._engine)
            statements = self._held.statements
            return self._held.transaction(
                "commit",
                lambda cursor: hotpath.apply(cursor, statements, prepared, renew_below),
                attempts=MAX_ATTEMPTS,
            )

    def commit_inline(self, batch: Batch) -> set[int] | None:
        """Commit ``batch`` now if that needs no waiting, else None (nothing written).

        Only a SQLite file database answers: its commit is a local write (WAL,
        ``synchronous=NORMAL``: no fsync but at checkpoints), so the engine can
        run it on its event loop and save the hop to its DB thread. It declines
        when the DB thread is using the held connection or another connection
        holds SQLite's write lock. Server databases always decline: a commit
        waits for the network and the server's log flush.
        """
        if not self._inline_capable:
            return None
        if not batch:
            return set()
        if not self._held_lock.acquire(blocking=False):
            return None
        try:
            prepared = committing.prepare(batch)
            renew_below = self._renew_below(batch)
            if self._held is None:
                self._held = hotpath.HeldConnection(self._engine)
            statements = self._held.statements
            return self._held.try_transaction(
                "commit",
                lambda cursor: hotpath.apply(cursor, statements, prepared, renew_below),
            )
        finally:
            self._held_lock.release()

    def acquire_slots(
        self, owner: str, pool: str, wanted: Sequence[tuple[int, str]], now: datetime
    ) -> list[tuple[int, str]]:
        if not wanted:
            return []
        self._transaction("create pool", lambda c: pooling.ensure_pool(c, pool))
        return self._transaction(
            "acquire pool slots", lambda c: pooling.acquire(c, owner, pool, wanted, now)
        )

    def set_pool_capacity(self, pool: str, capacity: int) -> None:
        try:
            check_name(pool)
        except ValueError as error:
            raise ValidationError([Problem(path="pool", message=str(error))]) from None
        if capacity <= 0:
            raise ValidationError(
                [Problem(path=f"pool {pool}", message="capacity must be greater than 0")]
            )
        self._transaction("set pool capacity", lambda c: pooling.set_capacity(c, pool, capacity))

    def list_pools(self) -> list[PoolRecord]:
        return self._transaction("list pools", pooling.list_pools)

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        if not notifying.supported(self._engine):
            return None
        return notifying.Listener(self._engine, wake).close

    def release(self, owner: str, run_ids: Sequence[int]) -> None:
        def work(connection: Connection) -> None:
            for chunk in _chunks(run_ids):
                connection.execute(
                    update(runs)
                    .where(runs.c.id.in_(chunk), runs.c.owner == owner)
                    .values(owner=None, lease_expires_at=None)
                )

        if run_ids:
            self._transaction("release runs", work)
