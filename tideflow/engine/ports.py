"""The ports the engine talks through: records, the ``Store`` protocol, the clock.

The engine never imports SQLAlchemy (an import-linter contract enforces it); it
reads and writes state only through :class:`Store`. ``tideflow.storage``
provides the SQL implementation; front doors (CLI, API, operator) wire it in.

Conventions for every implementation:

* All datetimes crossing the protocol are timezone-aware UTC.
* ``output`` values are JSON-compatible Python objects; the store encodes them.
* Every method is synchronous and may block; the engine calls it from a
  dedicated thread, never on the event loop — except the optional
  ``commit_inline`` (:class:`InlineCommit`), which must never block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from tideflow.model import DesiredState, EventKind, RunPhase, TaskPhase, Workflow
from tideflow.model.labels import LabelSelector

ApplyResult = Literal["created", "configured", "unchanged"]


def utcnow() -> datetime:
    """The default clock: aware UTC now. The engine takes a clock so tests can steer time."""
    return datetime.now(UTC)


@dataclass(slots=True)
class WorkflowRecord:
    namespace: str
    name: str
    generation: int
    workflow: Workflow
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class RunRecord:
    """One workflow run: its frozen spec snapshot, desired state and actual phase."""

    id: int
    namespace: str
    name: str
    workflow_name: str
    #: The workflow as it was when the run was created; editing the workflow never changes it.
    #: Left out of the repr: a large workflow would make printing a record (which
    #: asyncio and debuggers do) cost milliseconds and screens of text.
    workflow: Workflow = field(repr=False)
    params: dict[str, Any]
    desired_state: DesiredState
    phase: RunPhase
    #: Bumped by every control request; the engine compares it to spot changes cheaply.
    generation: int = 1
    owner: str | None = None
    lease_expires_at: datetime | None = None
    message: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: The run's own labels (from its ``WorkflowRun`` manifest, if any).
    own_labels: dict[str, str] = field(default_factory=dict)
    #: The last ``generation`` the owning engine has acted on (0: no engine has
    #: adopted the run yet). An engine observes the generation it reads when it
    #: adopts the run (claims it and converges it to its desired state) and each
    #: generation whose control request it applies; it writes it with that
    #: change, in the same commit. So ``observed_generation == generation``
    #: means the latest control request has been acted on: the run's phase
    #: already reflects its desired state (and the engine keeps it that way).
    observed_generation: int = 0

    @property
    def labels(self) -> dict[str, str]:
        """What label selectors see: the workflow's labels, overridden by the run's own."""
        return {**(self.workflow.metadata.labels or {}), **self.own_labels}


@dataclass(slots=True)
class TaskRecord:
    """One task instance of a run. Fan-out children are named ``parent[index]``."""

    run_id: int
    name: str
    #: The name of the task in the workflow spec (``fetch-bars`` for ``fetch-bars[3]``).
    task: str
    index: int | None = None
    phase: TaskPhase = TaskPhase.PENDING
    attempt: int = 0
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Earliest time the next attempt may start (retry backoff).
    not_before: datetime | None = None
    #: What a fan-out child works on: its ``forEach`` element, or for a sub-task
    #: spawned at run time ``{"function": ..., "args": ...}``. JSON; stored so a
    #: resumed run never has to re-derive it.
    item: Any = None
    #: Attempts made before the last retry of the run; retry limits count from here.
    attempt_base: int = 0


@dataclass(slots=True)
class RunUpdate:
    """The mutable columns of a run, as the owning engine writes them."""

    run_id: int
    phase: RunPhase
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: The generation the engine has acted on (see ``RunRecord.observed_generation``);
    #: None leaves the column as it is.
    observed_generation: int | None = None


@dataclass(slots=True)
class LogRecord:
    run_id: int
    task: str
    attempt: int
    stream: Literal["stdout", "stderr", "log"]
    text: str
    created_at: datetime
    #: Assigned by the store; increases with every line written (``logs -f`` resumes after it).
    id: int = 0


@dataclass(slots=True)
class EventRecord:
    """One event the engine reports (see :class:`~tideflow.model.EventKind`).

    Built by the run's state machine when the transition happens and carried
    in the :class:`Batch` that commits the transition, so that a store can
    persist it in the same transaction; listeners receive it after that
    commit. ``payload`` is JSON-compatible: ``phase`` (the run's or task's
    phase after the event), ``error`` for failures and retries, ``message``
    for run endings that carry one, ``notBefore`` and ``delaySeconds`` for
    retries.
    """

    kind: EventKind
    run_id: int
    run: str
    namespace: str
    workflow: str
    at: datetime
    #: The task instance (``fetch-bars[3]``) for task events; None for run events.
    task: str | None = None
    #: The task instance's attempt number at the time of the event.
    attempt: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    """Everything one engine tick writes, committed in one transaction.

    Every write is fenced: it applies only to runs ``owner`` still owns, and
    renews those runs' leases to ``lease_until`` in the same transaction.
    """

    owner: str
    lease_until: datetime
    run_updates: list[RunUpdate] = field(default_factory=list)
    task_inserts: list[TaskRecord] = field(default_factory=list)
    task_updates: list[TaskRecord] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    #: Runs to give up (finished, or the engine is shutting down): owner and lease cleared.
    release: list[int] = field(default_factory=list)
    #: Pool slots (run id, task instance) whose attempts ended.
    slot_releases: list[tuple[int, str]] = field(default_factory=list)
    #: The events of the transitions in this batch, in the order they happened.
    #: A store may persist them in the same transaction; none has to (``SqlStore``
    #: does not yet). They never make a batch worth committing on their own:
    #: every event comes with the write of the transition it reports.
    events: list[EventRecord] = field(default_factory=list)

    def run_ids(self) -> set[int]:
        ids = {u.run_id for u in self.run_updates}
        ids.update(t.run_id for t in self.task_inserts)
        ids.update(t.run_id for t in self.task_updates)
        ids.update(log.run_id for log in self.logs)
        ids.update(self.release)
        return ids

    def __bool__(self) -> bool:
        return bool(
            self.run_updates
            or self.task_inserts
            or self.task_updates
            or self.logs
            or self.release
            or self.slot_releases
        )


@dataclass(frozen=True, slots=True)
class PoolRecord:
    """A pool as stored: shared by every engine on the database."""

    name: str
    #: Slots shared by every engine (one when the capacity was never set).
    capacity: int
    #: Slots held now, counted as :meth:`Store.acquire_slots` counts them.
    in_use: int


class Store(Protocol):
    """Durable state of workflows, runs, task instances and logs."""

    # -- workflows (front doors) ------------------------------------------------
    def apply_workflow(self, workflow: Workflow) -> ApplyResult:
        """Create or update by (namespace, name); generation bumps only on a real change."""

    def get_workflow(self, namespace: str, name: str) -> WorkflowRecord:
        """Raises ``NotFoundError``."""

    def list_workflows(
        self, namespace: str | None = None, *, selector: LabelSelector | None = None
    ) -> list[WorkflowRecord]:
        """By namespace and name; ``namespace=None`` lists every namespace."""

    def delete_workflow(self, namespace: str, name: str) -> None:
        """Remove a workflow; its runs keep their snapshots. Raises ``NotFoundError``."""

    # -- runs (front doors) -----------------------------------------------------
    def create_run(self, run: RunRecord, tasks: Sequence[TaskRecord]) -> RunRecord:
        """Insert the run and its initial task instances; returns it with ``id`` set.

        ``run.id`` and each task's ``run_id`` are ignored on input. Raises
        ``ConflictError`` if a run of that name exists in the namespace.
        """

    def get_run(self, namespace: str, name: str) -> RunRecord:
        """Raises ``NotFoundError``."""

    def get_run_by_id(self, run_id: int) -> RunRecord:
        """Raises ``NotFoundError``."""

    def list_runs(
        self,
        namespace: str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        *,
        phases: Sequence[RunPhase] = (),
        selector: LabelSelector | None = None,
    ) -> list[RunRecord]:
        """Newest first; ``namespace=None`` lists every namespace. ``phases`` and
        ``selector`` narrow the listing before ``limit`` applies."""

    def delete_run(self, namespace: str, name: str) -> None:
        """Remove a run with its task instances, logs and pool holdings in one
        transaction. Raises ``NotFoundError``; the caller makes sure it is finished."""

    def list_tasks(self, run_id: int) -> list[TaskRecord]:
        """All task instances of the run, in insertion order."""

    def get_logs(self, run_id: int, task: str | None = None, *, after: int = 0) -> list[LogRecord]:
        """Log lines of the run (or of one task and its fan-out children), oldest
        first; with ``after``, only lines whose ``id`` is greater (to follow a log)."""

    def request_control(
        self,
        run_id: int,
        expected_generation: int,
        desired: DesiredState,
        *,
        reset_tasks: Sequence[TaskRecord] = (),
        reopen: bool = False,
    ) -> bool:
        """Compare-and-set the desired state; bumps ``generation``.

        Applies only if the run's generation still equals ``expected_generation``
        (returns ``False`` otherwise, nothing written). ``reset_tasks`` rewrite
        those task instances in the same transaction; ``reopen`` sets the run
        back to phase Pending with ``finished_at`` and ``message`` cleared (used
        by retry of a finished run).
        """

    # -- the engine -------------------------------------------------------------
    def claim_run(
        self, run_id: int, owner: str, now: datetime, until: datetime
    ) -> RunRecord | None:
        """Take ownership of one unfinished run if it is unowned, expired or already ours."""

    def claim_runs(self, owner: str, now: datetime, until: datetime, limit: int) -> list[RunRecord]:
        """Take ownership of up to ``limit`` unfinished runs that are unowned or expired."""

    def load_tasks(self, run_id: int) -> list[TaskRecord]:
        """Same as ``list_tasks``; named for the engine's use when adopting a run."""

    def renew_leases(self, owner: str, run_ids: Sequence[int], until: datetime) -> set[int]:
        """Extend leases still held by ``owner``; returns the ids still owned."""

    def read_control(self, run_ids: Sequence[int]) -> dict[int, tuple[DesiredState, int]]:
        """Desired state and generation of each run (missing ids are absent)."""

    def commit(self, batch: Batch) -> set[int]:
        """Apply ``batch`` in one transaction, fenced by ownership.

        Returns the run ids whose ownership was lost; none of their writes were
        applied. Writes of runs still owned are committed.
        """

    def release(self, owner: str, run_ids: Sequence[int]) -> None:
        """Give up ownership of runs (engine shutdown)."""

    def subscribe(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake`` (from any thread) soon after a run is created or a control
        request is written; returns the function that stops it, or None when the
        database cannot notify (the engine then relies on polling alone)."""

    def acquire_slots(
        self, owner: str, pool: str, wanted: Sequence[tuple[int, str]], now: datetime
    ) -> list[tuple[int, str]]:
        """Take slots of ``pool`` (shared by every engine on the database) for the
        (run id, task instance) pairs in ``wanted``, in order, while fewer than the
        pool's stored capacity are held (one if it was never set; the caller has
        no say); returns those granted. A holding counts while its owner owns the
        run; claiming a run drops its holdings."""

    # -- pools (front doors, and an engine publishing its settings) --------------
    def set_pool_capacity(self, pool: str, capacity: int) -> None:
        """Store the capacity of ``pool`` (created if missing) in one transaction;
        every engine's next :meth:`acquire_slots` counts against it."""

    def list_pools(self) -> list[PoolRecord]:
        """Every stored pool by name, with its capacity and live holdings."""


@runtime_checkable
class InlineCommit(Protocol):
    """An optional capability of a :class:`Store`: committing without blocking.

    The engine commits each tick's batch on its DB thread, so the event loop
    never waits for the database; the hop to that thread and back costs more
    than a small SQLite commit itself. A store that can tell, without
    waiting, whether it can commit now (SQLite with a zero busy timeout; an
    in-memory store) provides ``commit_inline``, and the engine offers it the
    tick's batch on the event loop first when the batch is small.
    """

    def commit_inline(self, batch: Batch) -> set[int] | None:
        """Like :meth:`Store.commit`, but never wait (for a lock, the network, a
        disk flush worth mentioning): if committing would have to wait, write
        nothing and return None; the engine then calls :meth:`Store.commit`
        with the same batch, unchanged, from its DB thread. Errors are raised
        as :meth:`Store.commit` raises them."""
