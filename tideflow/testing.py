"""``MemoryStore``: an in-memory :class:`~tideflow.engine.ports.Store`, for tests.

It honours the same contract as the SQL store (``tideflow.storage.store.SqlStore``)
and is checked by the same contract tests, so an engine test can run on it
without a database, and with the engine's injectable clock steer time
(retry backoff, run deadlines) instead of sleeping::

    from tideflow.testing import MemoryStore

    store = MemoryStore()
    run = control.submit_run(store, workflow)
    final = await Engine(store, LocalExecutor(), clock=fake_clock).drive(run.id)

What it keeps from the SQL store, exactly:

* every method is one atomic step under one lock, so the engine's database
  thread and front doors on other threads may call it at once;
* records go in and come out as copies: values are stored encoded as the SQL
  columns are (JSON for workflows, params, outputs and items; aware UTC
  datetimes), so a caller never aliases the store's state, a non-JSON value is
  refused with the same ``ValidationError``, and a naive datetime with a
  ``StorageError``;
* ownership is compare-and-set on ``owner`` / ``lease_expires_at``; a commit
  is fenced (the writes of runs the owner lost are dropped) and all or
  nothing; pool holdings count only while their owner owns the unfinished run;
* listings are ordered as the SQL store orders them, and ``NotFoundError``
  messages name the namespaces that do have an object of that name.

Nothing is durable: the state lives as long as the object.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
    TaskPhase,
    Workflow,
    check_name,
    to_document,
)
from tideflow.model.labels import LabelSelector

__all__ = ["MemoryStore"]

logger = logging.getLogger(__name__)

#: Slots of a pool whose capacity was never set (as in ``tideflow.storage.pooling``).
DEFAULT_CAPACITY = 1


# -- encoding, as the SQL store's columns encode ----------------------------------------


def _dump_json(value: Any, *, where: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        problem = Problem(path=where, message=f"not JSON-serialisable: {error}")
        raise ValidationError([problem]) from error


def _load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _utc(value: datetime | None, doing: str) -> datetime | None:
    """Aware datetimes in, aware UTC stored; a naive one is refused as the SQL store does."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise StorageError(
            f"in-memory store failed to {doing}: naive datetime {value.isoformat()} given; "
            "use an aware UTC datetime"
        )
    return value.astimezone(UTC)


def _aware(value: datetime, doing: str) -> datetime:
    stored = _utc(value, doing)
    assert stored is not None
    return stored


@dataclass(slots=True)
class _WorkflowRow:
    generation: int
    manifest: str
    created_at: datetime
    updated_at: datetime
    labels: dict[str, str] | None


@dataclass(slots=True)
class _RunRow:
    id: int
    namespace: str
    name: str
    workflow_name: str
    workflow: str
    #: The snapshot's labels, decoded once: selectors read them on every listing.
    workflow_labels: dict[str, str]
    params: str
    desired_state: DesiredState
    phase: RunPhase
    generation: int
    owner: str | None
    lease_expires_at: datetime | None
    message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    labels: str | None
    observed_generation: int

    @property
    def unfinished(self) -> bool:
        return self.phase not in FINISHED_RUN_PHASES

    def lease_free(self, now: datetime) -> bool:
        """Unowned, or the owner's lease has run out."""
        return self.owner is None or self.lease_expires_at is None or self.lease_expires_at <= now


@dataclass(slots=True)
class _TaskState:
    """The mutable columns of a task instance: what an update rewrites."""

    phase: TaskPhase
    attempt: int
    output: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    not_before: datetime | None
    attempt_base: int


@dataclass(slots=True)
class _TaskRow:
    task: str
    index: int | None
    item: str | None
    state: _TaskState


@dataclass(slots=True)
class _Slot:
    pool: str
    owner: str
    acquired_at: datetime


@dataclass(slots=True)
class _Subscribers:
    wakes: dict[int, Callable[[], None]] = field(default_factory=dict)
    next_key: int = 0


def _task_state(task: TaskRecord, doing: str) -> _TaskState:
    return _TaskState(
        phase=TaskPhase(task.phase),
        attempt=task.attempt,
        output=(
            None
            if task.output is None
            else _dump_json(task.output, where=f"runs[{task.run_id}].tasks[{task.name}].output")
        ),
        error=task.error,
        started_at=_utc(task.started_at, doing),
        finished_at=_utc(task.finished_at, doing),
        not_before=_utc(task.not_before, doing),
        attempt_base=task.attempt_base,
    )


def _task_row(task: TaskRecord, doing: str) -> _TaskRow:
    item = (
        None
        if task.item is None
        else _dump_json(task.item, where=f"runs[{task.run_id}].tasks[{task.name}].item")
    )
    return _TaskRow(task.task, task.index, item, _task_state(task, doing))


def _task_record(run_id: int, name: str, row: _TaskRow) -> TaskRecord:
    state = row.state
    return TaskRecord(
        run_id=run_id,
        name=name,
        task=row.task,
        index=row.index,
        item=_load_json(row.item),
        phase=state.phase,
        attempt=state.attempt,
        output=_load_json(state.output),
        error=state.error,
        started_at=state.started_at,
        finished_at=state.finished_at,
        not_before=state.not_before,
        attempt_base=state.attempt_base,
    )


def _load_workflow(manifest: str) -> Workflow:
    return Workflow.model_validate(json.loads(manifest))


def _run_record(row: _RunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        namespace=row.namespace,
        name=row.name,
        workflow_name=row.workflow_name,
        workflow=_load_workflow(row.workflow),
        params=json.loads(row.params),
        desired_state=row.desired_state,
        phase=row.phase,
        generation=row.generation,
        owner=row.owner,
        lease_expires_at=row.lease_expires_at,
        message=row.message,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        own_labels=_load_json(row.labels) or {},
        observed_generation=row.observed_generation,
    )


def _unique_sorted(ids: Iterable[int]) -> list[int]:
    return sorted(set(ids))


class MemoryStore:
    """The ``Store`` protocol in memory (see the module docstring).

    Args:
        clock: the source of ``created_at`` / ``updated_at`` timestamps, like
            ``SqlStore``'s; the engine's own clock is passed to the engine.
    """

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._workflows: dict[tuple[str, str], _WorkflowRow] = {}
        self._runs: dict[int, _RunRow] = {}
        self._run_ids: dict[tuple[str, str], int] = {}
        #: run id -> instance name -> row, in insertion order (``list_tasks``' order).
        self._tasks: dict[int, dict[str, _TaskRow]] = {}
        #: run id -> its log lines, in id order.
        self._logs: dict[int, list[LogRecord]] = {}
        self._pools: dict[str, int | None] = {}
        self._slots: dict[tuple[int, str], _Slot] = {}
        self._next_run_id = 1
        self._next_log_id = 1
        self._subscribers = _Subscribers()

    def close(self) -> None:
        """Nothing to close; here so front doors can treat it like ``SqlStore``."""

    # -- plumbing ---------------------------------------------------------------------
    def _notify(self) -> None:
        """Wake every subscriber; called after the lock is released."""
        with self._lock:
            wakes = list(self._subscribers.wakes.values())
        for wake in wakes:
            try:
                wake()
            except Exception:
                logger.exception("a store subscriber failed", extra={"action": "notify"})

    def _not_found(
        self, kind: str, keys: Iterable[tuple[str, str]], namespace: str, name: str
    ) -> NotFoundError:
        """The error for a missing object, naming the namespaces that do have one of that name.

        Called with the lock held.
        """
        elsewhere = sorted(ns for ns, n in keys if n == name)
        message = f'{kind} "{name}" not found in namespace {namespace}'
        if elsewhere:
            message += f" (found in: {', '.join(elsewhere)}; use -n {elsewhere[0]})"
        return NotFoundError(message)

    def _live(self, key: tuple[int, str], slot: _Slot) -> bool:
        """A holding counts while its owner owns the run and the run is unfinished."""
        run = self._runs.get(key[0])
        return run is not None and run.owner == slot.owner and run.unfinished

    def _forget_slots(self, run_id: int) -> None:
        for key in [key for key in self._slots if key[0] == run_id]:
            del self._slots[key]

    # -- workflows --------------------------------------------------------------------
    def apply_workflow(self, workflow: Workflow) -> ApplyResult:
        document = to_document(workflow)
        manifest = _dump_json(document, where="workflow")
        key = (workflow.metadata.namespace, workflow.metadata.name)
        labels = dict(workflow.metadata.labels) if workflow.metadata.labels else None
        with self._lock:
            now = _aware(self._clock(), "apply workflow")
            row = self._workflows.get(key)
            if row is None:
                self._workflows[key] = _WorkflowRow(1, manifest, now, now, labels)
                return "created"
            if json.loads(row.manifest) == document:
                return "unchanged"
            row.manifest = manifest
            row.labels = labels
            row.generation += 1
            row.updated_at = now
            return "configured"

    def get_workflow(self, namespace: str, name: str) -> WorkflowRecord:
        with self._lock:
            row = self._workflows.get((namespace, name))
            if row is None:
                raise self._not_found("workflow", self._workflows, namespace, name)
            return self._workflow_record(namespace, name, row)

    @staticmethod
    def _workflow_record(namespace: str, name: str, row: _WorkflowRow) -> WorkflowRecord:
        return WorkflowRecord(
            namespace=namespace,
            name=name,
            generation=row.generation,
            workflow=_load_workflow(row.manifest),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def list_workflows(
        self, namespace: str | None = None, *, selector: LabelSelector | None = None
    ) -> list[WorkflowRecord]:
        with self._lock:
            return [
                self._workflow_record(ns, name, row)
                for (ns, name), row in sorted(self._workflows.items())
                if (namespace is None or ns == namespace)
                and (not selector or selector.matches(row.labels))
            ]

    def delete_workflow(self, namespace: str, name: str) -> None:
        with self._lock:
            if self._workflows.pop((namespace, name), None) is None:
                raise self._not_found("workflow", self._workflows, namespace, name)

    # -- runs -------------------------------------------------------------------------
    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> RunRecord:
        names = [task.name for task in tasks]
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            problem = Problem(
                path=f"runs[{run.name}].tasks", message=f"duplicate task names {duplicates}"
            )
            raise ValidationError([problem])
        doing = "create run"
        document = to_document(run.workflow)
        labels = run.workflow.metadata.labels
        row = _RunRow(
            id=0,
            namespace=run.namespace,
            name=run.name,
            workflow_name=run.workflow_name,
            workflow=_dump_json(document, where="workflow"),
            workflow_labels=dict(labels) if labels else {},
            params=_dump_json(run.params, where=f"runs[{run.name}].params"),
            desired_state=DesiredState(run.desired_state),
            phase=RunPhase(run.phase),
            generation=run.generation,
            owner=run.owner,
            lease_expires_at=_utc(run.lease_expires_at, doing),
            message=run.message,
            created_at=_aware(run.created_at or self._clock(), doing),
            started_at=_utc(run.started_at, doing),
            finished_at=_utc(run.finished_at, doing),
            labels=(
                _dump_json(run.own_labels, where="metadata.labels") if run.own_labels else None
            ),
            observed_generation=run.observed_generation,
        )
        task_rows = {task.name: _task_row(task, doing) for task in tasks}
        with self._lock:
            key = (run.namespace, run.name)
            if key in self._run_ids:
                raise ConflictError(
                    f'run "{run.name}" already exists in namespace "{run.namespace}"'
                )
            row.id = self._next_run_id
            self._next_run_id += 1
            self._runs[row.id] = row
            self._run_ids[key] = row.id
            self._tasks[row.id] = task_rows
            self._logs[row.id] = []
            created = _run_record(row)
        self._notify()
        return created

    def get_run(self, namespace: str, name: str) -> RunRecord:
        with self._lock:
            run_id = self._run_ids.get((namespace, name))
            if run_id is None:
                raise self._not_found("run", self._run_ids, namespace, name)
            return _run_record(self._runs[run_id])

    def get_run_by_id(self, run_id: int) -> RunRecord:
        with self._lock:
            row = self._runs.get(run_id)
            if row is None:
                raise NotFoundError(f"run with id {run_id} not found")
            return _run_record(row)

    def list_runs(
        self,
        namespace: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        *,
        phases: Sequence[RunPhase] = (),
        selector: LabelSelector | None = None,
    ) -> list[RunRecord]:
        wanted = {RunPhase(p) for p in phases}
        limit = max(0, limit)
        with self._lock:
            found: list[RunRecord] = []
            for run_id in sorted(self._runs, reverse=True):
                if len(found) >= limit:
                    break
                row = self._runs[run_id]
                if namespace is not None and row.namespace != namespace:
                    continue
                if workflow is not None and row.workflow_name != workflow:
                    continue
                if wanted and row.phase not in wanted:
                    continue
                if selector:
                    labels = {**row.workflow_labels, **(_load_json(row.labels) or {})}
                    if not selector.matches(labels):
                        continue
                found.append(_run_record(row))
            return found

    def delete_run(self, namespace: str, name: str) -> None:
        with self._lock:
            run_id = self._run_ids.pop((namespace, name), None)
            if run_id is None:
                raise self._not_found("run", self._run_ids, namespace, name)
            del self._runs[run_id]
            del self._tasks[run_id]
            del self._logs[run_id]
            self._forget_slots(run_id)

    def list_tasks(self, run_id: int) -> list[TaskRecord]:
        with self._lock:
            rows = self._tasks.get(run_id, {})
            return [_task_record(run_id, name, row) for name, row in rows.items()]

    def load_tasks(self, run_id: int) -> list[TaskRecord]:
        return self.list_tasks(run_id)

    def get_logs(self, run_id: int, task: str | None = None, *, after: int = 0) -> list[LogRecord]:
        with self._lock:
            return [
                LogRecord(
                    log.run_id, log.task, log.attempt, log.stream, log.text, log.created_at, log.id
                )
                for log in self._logs.get(run_id, ())
                if log.id > after
                and (task is None or log.task == task or log.task.startswith(f"{task}["))
            ]

    def request_control(
        self,
        run_id: int,
        expected_generation: int,
        desired: DesiredState,
        *,
        reset_tasks: Sequence[TaskRecord] = (),
        reopen: bool = False,
    ) -> bool:
        desired = DesiredState(desired)
        resets = [(t.name, _task_state(t, "request control")) for t in reset_tasks]
        with self._lock:
            row = self._runs.get(run_id)
            if row is None:
                raise NotFoundError(f"run with id {run_id} not found")
            if row.generation != expected_generation:
                return False
            row.desired_state = desired
            row.generation += 1
            if reopen:
                row.phase = RunPhase.PENDING
                row.finished_at = None
                row.message = None
            tasks = self._tasks[run_id]
            for name, state in resets:
                if name in tasks:
                    tasks[name].state = state
        self._notify()
        return True

    # -- the engine -------------------------------------------------------------------
    def claim_run(
        self, run_id: int, owner: str, now: datetime, until: datetime
    ) -> RunRecord | None:
        now, until = _aware(now, "claim run"), _aware(until, "claim run")
        with self._lock:
            row = self._runs.get(run_id)
            if row is None or not row.unfinished:
                return None
            if row.owner != owner and not row.lease_free(now):
                return None
            row.owner, row.lease_expires_at = owner, until
            self._forget_slots(run_id)
            return _run_record(row)

    def claim_runs(self, owner: str, now: datetime, until: datetime, limit: int) -> list[RunRecord]:
        if limit <= 0:
            return []
        now, until = _aware(now, "claim runs"), _aware(until, "claim runs")
        with self._lock:
            claimed: list[RunRecord] = []
            for run_id in sorted(self._runs):
                if len(claimed) >= limit:
                    break
                row = self._runs[run_id]
                if row.unfinished and row.lease_free(now):
                    row.owner, row.lease_expires_at = owner, until
                    self._forget_slots(run_id)
                    claimed.append(_run_record(row))
            return claimed

    def renew_leases(self, owner: str, run_ids: Sequence[int], until: datetime) -> set[int]:
        if not run_ids:
            return set()
        until = _aware(until, "renew leases")
        with self._lock:
            held: set[int] = set()
            for run_id in _unique_sorted(run_ids):
                row = self._runs.get(run_id)
                if row is not None and row.owner == owner:
                    row.lease_expires_at = until
                    held.add(run_id)
            return held

    def read_control(self, run_ids: Sequence[int]) -> dict[int, tuple[DesiredState, int]]:
        with self._lock:
            return {
                run_id: (row.desired_state, row.generation)
                for run_id in _unique_sorted(run_ids)
                if (row := self._runs.get(run_id)) is not None
            }

    def commit(self, batch: Batch) -> set[int]:
        if not batch:
            return set()
        doing = "commit"
        # Everything is encoded before anything is written: a bad value changes nothing.
        lease_until = _aware(batch.lease_until, doing)
        inserts = [(t.run_id, t.name, _task_row(t, doing)) for t in batch.task_inserts]
        updates = [(t.run_id, t.name, _task_state(t, doing)) for t in batch.task_updates]
        run_updates = [
            (
                u.run_id,
                RunPhase(u.phase),
                u.message,
                _utc(u.started_at, doing),
                _utc(u.finished_at, doing),
                u.observed_generation,
            )
            for u in batch.run_updates
        ]
        logs = [(log, _aware(log.created_at, doing)) for log in batch.logs]
        with self._lock:
            # The fence: every run the batch touches must still be the owner's.
            lost = {
                run_id
                for run_id in batch.run_ids()
                if (row := self._runs.get(run_id)) is None or row.owner != batch.owner
            }
            kept_inserts = [entry for entry in inserts if entry[0] not in lost]
            new_keys = [(run_id, name) for run_id, name, _ in kept_inserts]
            clashes = sorted(
                {
                    key
                    for key in new_keys
                    if new_keys.count(key) > 1 or key[1] in self._tasks[key[0]]
                }
            )
            if clashes:
                raise StorageError(
                    f"in-memory store failed to {doing}: task instances already exist: {clashes}"
                )
            # Nothing can fail from here on: the batch applies as a whole.
            for run_id in batch.run_ids() - lost:
                self._runs[run_id].lease_expires_at = lease_until
            for run_id, name, task_row in kept_inserts:
                self._tasks[run_id][name] = task_row
            for run_id, name, state in updates:
                if run_id not in lost and name in self._tasks[run_id]:
                    self._tasks[run_id][name].state = state
            for run_id, phase, message, started_at, finished_at, observed in run_updates:
                if run_id in lost:
                    continue
                row = self._runs[run_id]
                row.phase, row.message = phase, message
                row.started_at, row.finished_at = started_at, finished_at
                if observed is not None:
                    row.observed_generation = observed
            for log, created_at in logs:
                if log.run_id in lost:
                    continue
                self._logs[log.run_id].append(
                    LogRecord(
                        log.run_id,
                        log.task,
                        log.attempt,
                        log.stream,
                        log.text,
                        created_at,
                        self._next_log_id,
                    )
                )
                self._next_log_id += 1
            # Slot releases are not fenced: only the owner's own holdings go.
            for key in batch.slot_releases:
                slot = self._slots.get(key)
                if slot is not None and slot.owner == batch.owner:
                    del self._slots[key]
            for run_id in set(batch.release) - lost:
                row = self._runs[run_id]
                if row.owner == batch.owner:
                    row.owner = row.lease_expires_at = None
            return lost

    def release(self, owner: str, run_ids: Sequence[int]) -> None:
        with self._lock:
            for run_id in _unique_sorted(run_ids):
                row = self._runs.get(run_id)
                if row is not None and row.owner == owner:
                    row.owner = row.lease_expires_at = None

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        with self._lock:
            key = self._subscribers.next_key
            self._subscribers.next_key += 1
            self._subscribers.wakes[key] = wake

        def stop() -> None:
            with self._lock:
                self._subscribers.wakes.pop(key, None)

        return stop

    def acquire_slots(
        self, owner: str, pool: str, wanted: Sequence[tuple[int, str]], now: datetime
    ) -> list[tuple[int, str]]:
        if not wanted:
            return []
        now = _aware(now, "acquire pool slots")
        with self._lock:
            stored = self._pools.setdefault(pool, None)
            capacity = DEFAULT_CAPACITY if stored is None else stored
            live = sum(
                1
                for key, slot in self._slots.items()
                if slot.pool == pool and self._live(key, slot)
            )
            granted = [(run_id, task) for run_id, task in wanted[: max(0, capacity - live)]]
            if len(set(granted)) != len(granted):
                raise StorageError(
                    "in-memory store failed to acquire pool slots: "
                    f"a task instance is asked for twice: {granted}"
                )
            # A stale holding of the same task (left by an engine that died) is replaced.
            for key in granted:
                self._slots[key] = _Slot(pool, owner, now)
            return granted

    # -- pools ------------------------------------------------------------------------
    def set_pool_capacity(self, pool: str, capacity: int) -> None:
        try:
            check_name(pool)
        except ValueError as error:
            raise ValidationError([Problem(path="pool", message=str(error))]) from None
        if capacity <= 0:
            raise ValidationError(
                [Problem(path=f"pool {pool}", message="capacity must be greater than 0")]
            )
        with self._lock:
            self._pools[pool] = capacity

    def list_pools(self) -> list[PoolRecord]:
        with self._lock:
            in_use: dict[str, int] = {}
            for key, slot in self._slots.items():
                if self._live(key, slot):
                    in_use[slot.pool] = in_use.get(slot.pool, 0) + 1
            return [
                PoolRecord(
                    name=name,
                    capacity=DEFAULT_CAPACITY if capacity is None else capacity,
                    in_use=in_use.get(name, 0),
                )
                for name, capacity in sorted(self._pools.items())
            ]
