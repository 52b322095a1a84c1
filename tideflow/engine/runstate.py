"""The in-memory state of one owned run, and the rules that move it forward.

:class:`RunState` is the reconciler's working copy of a run: its task
instances (loaded from the store when the run was claimed), per-task counters
of unfinished upstream tasks, and a queue of tasks ready to start. Applying an
event (an attempt finished, a retry is due, the user terminated the run)
touches only the task and its direct successors, so the cost of a transition
does not grow with the size of the DAG.

Nothing here does I/O. Every change is recorded as a write
(:meth:`RunState.take_writes`), and everything that must happen because of it
(attempts to cancel, events to emit, retries to wake up for, the run to let
go of) as :class:`Effects` (:meth:`RunState.take_effects`). The reconciler
takes both at commit time and carries the effects out only once the commit
succeeded, so no consequence is ever seen of a change that was not written.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tideflow.definition.dag import Graph
from tideflow.definition.templating import TaskView, render
from tideflow.engine.execution import Attempt, Outcome, Spawn
from tideflow.engine.ports import EventRecord, LogRecord, RunRecord, RunUpdate, TaskRecord
from tideflow.engine.status import count_phases
from tideflow.engine.transitions import (
    Readiness,
    can_transition,
    fan_in,
    live_phase,
    readiness,
    run_outcome,
)
from tideflow.model import (
    DesiredState,
    EventKind,
    RetryPolicy,
    RunPhase,
    TaskCounts,
    TaskPhase,
    TaskSpec,
)
from tideflow.model.templated import task_templates

logger = logging.getLogger(__name__)

P = TaskPhase
E = EventKind
_NO_RETRY = RetryPolicy()

#: The event of a task instance reaching a final phase (a timed-out last attempt
#: is reported as ``TaskTimedOut`` instead of ``TaskFailed``, see ``complete``).
_TASK_ENDED = {
    P.SUCCEEDED: E.TASK_SUCCEEDED,
    P.FAILED: E.TASK_FAILED,
    P.SKIPPED: E.TASK_SKIPPED,
    P.UPSTREAM_FAILED: E.TASK_UPSTREAM_FAILED,
    P.TERMINATED: E.TASK_TERMINATED,
}
#: The event of the run entering a phase (Running is RunStarted or RunResumed,
#: see ``_set_run_phase``; Pending is never entered by the engine).
_RUN_ENTERED = {
    RunPhase.PAUSED: E.RUN_PAUSED,
    RunPhase.SUCCEEDED: E.RUN_SUCCEEDED,
    RunPhase.FAILED: E.RUN_FAILED,
    RunPhase.TERMINATED: E.RUN_TERMINATED,
}


@dataclass(frozen=True, slots=True)
class Effects:
    """What must happen once a commit of a run's writes succeeded.

    Taken with the writes (:meth:`RunState.take_effects`) so that each effect
    belongs to exactly one commit: carried out if it succeeds, dropped with
    the run's state if it fails (re-adopting the run derives them again from
    what the database holds). Nothing happened is the shared :data:`NO_EFFECTS`,
    so a quiet run costs no allocation per tick.
    """

    #: Instances whose attempts in flight must be cancelled (the run ended them).
    cancel: Sequence[str] = ()
    #: Events of the committed transitions, in order: written with the commit
    #: (for a store that persists them) and then handed to listeners.
    events: Sequence[EventRecord] = ()
    #: Retries to wake up for: (not before, instance name); see :meth:`RunState.retry_due`.
    timers: Sequence[tuple[datetime, str]] = ()
    #: The run finished and has nothing in flight: release it in the commit, then forget it.
    release: bool = False

    def __bool__(self) -> bool:
        return bool(self.cancel or self.events or self.timers or self.release)


#: The effects of a commit in which nothing happened to the run.
NO_EFFECTS = Effects()


class TasksView:
    """``tasks`` in templates: read-only, lazy access to the run's task instances
    (no mapping is built per render, which matters for runs of 10,000 tasks)."""

    def __init__(self, instances: dict[str, TaskRecord]) -> None:
        self._instances = instances

    def __getitem__(self, name: str) -> TaskView:
        record = self._instances[name]
        return TaskView(record.output, record.phase.value, record.attempt)

    def __contains__(self, name: object) -> bool:
        return name in self._instances


class RunState:
    """One run being driven by this engine."""

    def __init__(
        self,
        record: RunRecord,
        tasks: list[TaskRecord],
        now: datetime,
        *,
        reattached: Collection[str] = (),
    ) -> None:
        """Adopt a run from its persisted task instances.

        Args:
            record: The run, just claimed.
            tasks: Its task instances, as loaded.
            now: The time of adoption.
            reattached: Instances left Running by a previous owner whose
                attempts the executor follows (see :meth:`orphans`): they stay
                Running as the same attempt, in :attr:`running`. Every other
                Running instance is closed as lost and queued for a new attempt.
        """
        self.record = record
        self.specs: dict[str, TaskSpec] = {t.name: t for t in record.workflow.spec.tasks}
        #: Per task spec, its templated fields that are set (see templated_fields).
        self._templated: dict[str, tuple[tuple[str, Any], ...]] = {}
        self.graph = Graph.from_tasks(record.workflow.spec.tasks)
        self.instances: dict[str, TaskRecord] = {}
        self.children: dict[str, list[TaskRecord]] = {}
        self.open_children: dict[str, int] = {}
        self.remaining: dict[str, int] = {}
        self.unfinished = 0
        #: Instances ready to start, in order (see :meth:`ready_tasks`).
        self._ready: deque[str] = deque()
        #: Instances with an attempt in flight on this engine.
        self.running: set[str] = set()
        self.dirty: dict[str, TaskRecord] = {}
        self.inserts: list[TaskRecord] = []
        self.logs: list[LogRecord] = []
        self.run_dirty = False
        # What the next commit's Effects carry (see take_effects).
        self._timers: list[tuple[datetime, str]] = []
        self._cancel: list[str] = []
        self._events: list[EventRecord] = []
        self._counts: Counter[TaskPhase] = Counter()
        #: When the run was adopted: the time of what ``_adopt`` changes.
        self._adopted_at = now
        self._adopt(tasks, now, reattached)
        # Adopting converged the run to the desired state it was read with.
        self._observe(record.generation)

    # -- loading ----------------------------------------------------------------

    def _adopt(
        self, tasks: list[TaskRecord], now: datetime, reattached: Collection[str] = ()
    ) -> None:
        """Rebuild counters from persisted instances; close attempts lost with a dead engine
        unless the executor reattached to them (``reattached``)."""
        for task in tasks:
            self.instances[task.name] = task
            self._counts[task.phase] += 1
            if task.index is not None:
                self.children.setdefault(task.task, []).append(task)
        for kids in self.children.values():
            kids.sort(key=lambda t: t.index or 0)
        for parent, kids in self.children.items():
            self.open_children[parent] = sum(1 for k in kids if not k.phase.finished)
        # Counted against a set of the finished ones (none at all in a fresh run),
        # not by reading every upstream instance: a grid has edges² of them.
        done = {task.name for task in tasks if task.phase.finished}
        for name, upstream in self.graph.upstream.items():
            self.remaining[name] = len(upstream) - (
                sum(1 for u in upstream if u in done) if done else 0
            )
        terminating = self.record.desired_state is DesiredState.TERMINATED
        for task in tasks:
            if task.phase.finished:
                continue
            self.unfinished += 1
            if task.phase is P.RUNNING and task.name in reattached:
                # Its attempt outlived its engine (a Kubernetes Job) and the executor
                # follows it: it goes on as the same attempt; its outcome completes it.
                self.running.add(task.name)
            elif task.phase is P.RUNNING and not self._is_waiting_parent(task):
                # Its engine died mid-attempt: run it again as a new attempt, unless
                # the run is being terminated (just below).
                again = "" if terminating else "; it runs again as a new attempt"
                self._log(
                    task, "log", f"attempt {task.attempt} was lost with its engine{again}\n", now
                )
                if not terminating:
                    self._set(task, P.QUEUED)
                    self._ready.append(task.name)
            elif task.phase is P.QUEUED:
                self._ready.append(task.name)
            elif task.phase is P.RETRYING:
                self._timers.append((task.not_before or now, task.name))
            elif (
                task.phase is P.PENDING
                and task.index is not None
                and self.instances[task.task].phase is P.RUNNING
            ):
                self._ready.append(task.name)
        for name in self.graph.order:
            task = self.instances[name]
            if task.phase is P.PENDING and self.remaining[name] == 0:
                self._decide(name, now)
        if self.record.phase is RunPhase.PENDING:
            self.record.started_at = self.record.started_at or now
        if self.finished:
            return
        if self.record.desired_state is DesiredState.TERMINATED:
            self.stop(now)
        elif self.unfinished == 0:
            self._complete(now)  # its last task finished just before its engine died
        else:
            self._set_run_phase(live_phase(self.record.desired_state))

    def _is_waiting_parent(self, task: TaskRecord) -> bool:
        return task.index is None and task.name in self.children

    # -- small helpers ------------------------------------------------------------

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def finished(self) -> bool:
        return self.record.phase.finished

    @property
    def dispatching(self) -> bool:
        return self.record.desired_state is DesiredState.RUNNING and not self.finished

    def _set(self, task: TaskRecord, phase: TaskPhase) -> None:
        if not can_transition(task.phase, phase):
            raise AssertionError(f"{task.name}: invalid transition {task.phase} -> {phase}")
        self._counts[task.phase] -= 1
        self._counts[phase] += 1
        task.phase = phase
        self.dirty[task.name] = task

    def _log(self, task: TaskRecord, stream: Any, text: str, now: datetime) -> None:
        self.logs.append(LogRecord(self.id, task.name, task.attempt, stream, text, now))

    @property
    def seen_generation(self) -> int:
        """The last generation (control request) this engine has acted on."""
        return self.record.observed_generation

    def _observe(self, generation: int) -> None:
        """Record that the run now reflects control request ``generation``; it is
        written with the next commit (``RunUpdate.observed_generation``)."""
        if self.record.observed_generation != generation:
            self.record.observed_generation = generation
            self.run_dirty = True

    def _event(
        self,
        kind: EventKind,
        now: datetime,
        task: TaskRecord | None = None,
        **payload: Any,
    ) -> None:
        """Record an event of this run (or of ``task``) for the next commit."""
        r = self.record
        if task is not None:
            payload["phase"] = task.phase.value
            if task.error is not None and kind is not E.TASK_SUCCEEDED:
                payload.setdefault("error", task.error)
        else:
            payload["phase"] = r.phase.value
            if r.message is not None:
                payload.setdefault("message", r.message)
        self._events.append(
            EventRecord(
                kind,
                r.id,
                r.name,
                r.namespace,
                r.workflow_name,
                now,
                task.name if task is not None else None,
                task.attempt if task is not None else None,
                payload,
            )
        )

    def _task_ended(self, task: TaskRecord, now: datetime, kind: EventKind | None = None) -> None:
        self._event(kind or _TASK_ENDED[task.phase], now, task)

    def _set_run_phase(
        self, phase: RunPhase, message: str | None = None, now: datetime | None = None
    ) -> None:
        """Move the run to ``phase`` (with ``message``), reporting the change.

        Entering Running from Pending is ``RunStarted`` (a first start, or a
        start after a retry reopened the run); from Paused it is ``RunResumed``.
        A change of message alone is written but is no event.

        Args:
            phase: The new phase.
            message: The run's message (None clears it).
            now: The time of the change; defaults to when the run was adopted
                (only adoption calls this without a time).
        """
        previous = self.record.phase
        if previous is not phase or message != self.record.message:
            self.record.phase = phase
            self.record.message = message
            self.run_dirty = True
        if previous is phase:
            return
        if phase is RunPhase.RUNNING:
            kind = E.RUN_RESUMED if previous is RunPhase.PAUSED else E.RUN_STARTED
        else:
            kind = _RUN_ENTERED[phase]
        self._event(kind, now or self._adopted_at)

    def take_writes(
        self,
    ) -> tuple[list[RunUpdate], list[TaskRecord], list[TaskRecord], list[LogRecord]]:
        """Take the writes recorded since the last call: run update, task inserts,
        task updates, log lines. Events come with :meth:`take_effects`."""
        runs: list[RunUpdate] = []
        if self.run_dirty:
            r = self.record
            runs.append(
                RunUpdate(
                    r.id, r.phase, r.message, r.started_at, r.finished_at, r.observed_generation
                )
            )
            self.run_dirty = False
        inserts, self.inserts = self.inserts, []
        # Inserted rows carry their latest state already; do not update them twice.
        for task in inserts:
            self.dirty.pop(task.name, None)
        updates = list(self.dirty.values())
        self.dirty.clear()
        logs, self.logs = self.logs, []
        return runs, inserts, updates, logs

    def take_effects(self) -> Effects:
        """Take what must happen once the writes taken with it are committed.

        Called at commit time next to :meth:`take_writes`; a second call
        without a transition in between returns :data:`NO_EFFECTS`.
        """
        release = self.finished and not self.running
        cancel, events, timers = self._cancel, self._events, self._timers
        if not (cancel or events or timers or release):
            return NO_EFFECTS
        # Hand the filled lists over and start new ones; empty ones stay ours.
        if cancel:
            self._cancel = []
        if events:
            self._events = []
        if timers:
            self._timers = []
        return Effects(cancel or (), events or (), timers or (), release)

    # -- readiness ------------------------------------------------------------------

    def _decide(self, name: str, now: datetime) -> None:
        """All upstream tasks of ``name`` finished: run it, skip it, or fail it."""
        task = self._verdict(name, now)
        if task is not None:
            self._finished(task, now)

    def _verdict(self, name: str, now: datetime) -> TaskRecord | None:
        """Apply the trigger rule of ``name``: queue it, or finish it (returned) as
        Skipped or UpstreamFailed without running it."""
        instances = self.instances
        upstream = [instances[u].phase for u in self.graph.upstream[name]]
        verdict = readiness(self.specs[name].trigger_rule, upstream)
        if verdict is Readiness.RUN:
            self._ready.append(name)
            return None
        task = self.instances[name]
        phase = P.SKIPPED if verdict is Readiness.SKIP else P.UPSTREAM_FAILED
        self._set(task, phase)
        task.finished_at = now
        self._settle_children(task, phase, now)
        return task

    def _settle_children(self, parent: TaskRecord, phase: TaskPhase, now: datetime) -> None:
        """A retried run kept the sub-tasks of a fanned-out task (see ``control.retry_resets``);
        if the task does not run this time, the sub-tasks waiting for it end as it did."""
        for kid in self.children.get(parent.name, ()):
            if kid.phase.finished:
                continue
            self._set(kid, phase)
            kid.finished_at = now
            self.unfinished -= 1
            self.open_children[parent.name] -= 1
            self._task_ended(kid, now)

    def _finished(self, first: TaskRecord, now: datetime, kind: EventKind | None = None) -> None:
        """Propagate the end of ``first`` to its parent or its successors (iteratively).

        ``kind`` overrides the event reported for ``first`` (``TaskTimedOut``).
        """
        stack = [first]
        while stack:
            task = stack.pop()
            self.unfinished -= 1
            self._task_ended(task, now, kind if task is first else None)
            if task.index is not None:
                parent = self.instances[task.task]
                self.open_children[parent.name] -= 1
                if self.open_children[parent.name] == 0:
                    self._close_parent(parent, now)
                    stack.append(parent)
                continue
            remaining = self.remaining
            for successor in self.graph.downstream[task.name]:
                left = remaining[successor] = remaining[successor] - 1
                if left == 0 and self.instances[successor].phase is P.PENDING:
                    skipped = self._verdict(successor, now)
                    if skipped is not None:
                        stack.append(skipped)
        if self.unfinished == 0 and not self.finished:
            self._complete(now)

    def _close_parent(self, parent: TaskRecord, now: datetime) -> None:
        kids = self.children[parent.name]
        phase = fan_in(k.phase for k in kids)
        self._set(parent, phase)
        parent.finished_at = now
        if phase is P.SUCCEEDED:
            parent.output = [k.output for k in kids]
            parent.error = None
        else:
            bad = [k.name for k in kids if k.phase is not P.SUCCEEDED and k.phase is not P.SKIPPED]
            shown = ", ".join(bad[:5]) + (", …" if len(bad) > 5 else "")
            parent.error = f"{len(bad)} of {len(kids)} sub-tasks did not succeed: {shown}"

    def _complete(self, now: datetime, message: str | None = None) -> None:
        top = (t.phase for t in self.instances.values() if t.index is None)
        phase = run_outcome(top, self.record.desired_state)
        if message is not None:
            phase = RunPhase.FAILED
        self.record.finished_at = now
        self._ready.clear()
        self._set_run_phase(phase, message, now)

    # -- dispatch -------------------------------------------------------------------

    @property
    def has_ready(self) -> bool:
        """Whether the run may start tasks now and has some waiting to start."""
        return bool(self._ready) and self.dispatching

    def ready_tasks(self, now: datetime) -> Iterator[TaskRecord]:
        """The tasks ready to start, in order, for the caller to :meth:`start` or leave.

        A task the caller does not start before taking the next one (no slot,
        no pool slot yet), or leaves when it stops iterating, stays ready in
        its place, ahead of the tasks not reached. ``forEach`` tasks are fanned
        out on the way (their sub-tasks queue up; they have no attempt of their
        own) and are not yielded. Iteration stops as soon as the run must not
        start tasks any more (it was paused or finished meanwhile).
        """
        ready = self._ready
        left: list[str] = []
        task: TaskRecord | None = None
        try:
            while ready and self.dispatching:
                name = ready.popleft()
                task = self.instances[name]
                if task.phase.finished or name in self.running or self.expand(task, now):
                    task = None
                    continue
                yield task
                if name not in self.running and not task.phase.finished:
                    left.append(name)  # not started (a failed render finishes it)
                task = None
        finally:
            if task is not None and task.name not in self.running and not task.phase.finished:
                left.append(task.name)  # the caller stopped at it
            ready.extendleft(reversed(left))

    def expand(self, task: TaskRecord, now: datetime) -> bool:
        """Fan a ``forEach`` task out into sub-tasks. Returns False if it is not one.

        A task that already has sub-tasks (a retried run) reuses them: the
        succeeded ones keep their outputs and only the reset ones run again.
        """
        if task.index is not None:
            return False
        kids = self.children.get(task.name)
        if kids is not None:
            self._set(task, P.RUNNING)
            task.started_at = task.started_at or now
            self._ready.extend(k.name for k in kids if k.phase is P.PENDING)
            if self.open_children[task.name] == 0:
                self._close_parent(task, now)
                self._finished(task, now)
            return True
        spec = self.specs[task.task]
        if spec.for_each is None:
            return False
        task.attempt += 1
        task.started_at = now
        try:
            items = render(spec.for_each, self.template_context(task))
            if not isinstance(items, list):
                raise ValueError(f"forEach must produce a list, got {type(items).__name__}")
        except Exception as exc:
            self._fail(task, now, f"forEach: {exc}")
            return True
        self._spawn(task, [(item, None) for item in items], now)
        return True

    def _spawn(
        self, parent: TaskRecord, items: list[tuple[Any, Spawn | None]], now: datetime
    ) -> None:
        kids: list[TaskRecord] = []
        for index, (item, spawn) in enumerate(items):
            kid = TaskRecord(
                self.id,
                f"{parent.name}[{index}]",
                parent.task,
                index=index,
                item=spawn.to_item() if spawn else item,
            )
            kids.append(kid)
            self.instances[kid.name] = kid
            self._counts[P.PENDING] += 1
            self._ready.append(kid.name)
        self.children[parent.name] = kids
        self.inserts.extend(kids)
        self.unfinished += len(kids)
        self.open_children[parent.name] = len(kids)
        self._set(parent, P.RUNNING)
        if not kids:
            self._set(parent, P.SUCCEEDED)
            parent.output = []
            parent.finished_at = now
            self._finished(parent, now)

    def start(self, task: TaskRecord, now: datetime) -> Attempt | None:
        """Move a ready task to Running and build its attempt (None if it failed to render)."""
        spec = self.specs[task.task]
        task.attempt += 1
        task.started_at = now
        task.finished_at = None
        task.not_before = None
        task.error = None
        templated = self._templated.get(spec.name)
        if templated is None:
            templated = self._templated[spec.name] = templated_fields(spec)
        try:
            attempt = build_attempt(self.record, spec, task, self.instances, templated)
        except Exception as exc:
            self._fail(task, now, f"cannot render the task's inputs: {exc}")
            return None
        self._set(task, P.RUNNING)
        self.running.add(task.name)
        self._event(E.TASK_STARTED, now, task)
        return attempt

    def template_context(self, task: TaskRecord) -> dict[str, Any]:
        return template_context(self.record, self.instances, task)

    @staticmethod
    def orphans(record: RunRecord, tasks: list[TaskRecord]) -> list[Attempt]:
        """The attempts an engine that is gone left Running in this run, as it started them.

        The reconciler asks its executor to reattach to each before it builds
        the run's state, and passes the ones it follows as ``reattached``. Nothing is
        changed: same attempt numbers, inputs rendered as when they started
        (their upstream outputs were final by then).

        Args:
            record: The run, just claimed.
            tasks: Its task instances, as loaded.

        Returns:
            One attempt per instance left Running, except fanned-out tasks
            waiting for their sub-tasks (no attempt of their own) and instances
            whose inputs no longer render (they run again as new attempts). Empty
            when the run is being terminated: its lost attempts are closed as
            before, not followed.
        """
        if record.desired_state is DesiredState.TERMINATED:
            return []
        specs = {t.name: t for t in record.workflow.spec.tasks}
        instances = {t.name: t for t in tasks}
        parents = {t.task for t in tasks if t.index is not None}
        attempts: list[Attempt] = []
        for task in tasks:
            if task.phase is not P.RUNNING or (task.index is None and task.name in parents):
                continue
            try:
                attempts.append(build_attempt(record, specs[task.task], task, instances))
            except Exception as exc:
                logger.info(
                    "run %s: cannot rebuild attempt %d of %s to reattach to it: %s",
                    record.name,
                    task.attempt,
                    task.name,
                    exc,
                    extra={"action": "reattach", "run": record.name},
                )
        return attempts

    # -- outcomes -------------------------------------------------------------------

    def complete(self, name: str, number: int, outcome: Outcome, now: datetime) -> None:
        """An attempt ended. Stale outcomes (terminated, superseded) are ignored."""
        self.running.discard(name)
        task = self.instances.get(name)
        if task is None or task.phase is not P.RUNNING or task.attempt != number:
            return
        for stream, text in outcome.logs:
            self._log(task, stream, text, now)
        if outcome.ok:
            if outcome.spawned:
                if task.index is not None:
                    self._fail(task, now, "sub-tasks cannot spawn sub-tasks of their own")
                    return
                self._spawn(task, [(None, s) for s in outcome.spawned], now)
                return
            self._set(task, P.SUCCEEDED)
            task.output = outcome.output
            task.finished_at = now
            self._finished(task, now)
            return
        error = outcome.error or "failed"
        policy = self.specs[task.task].retry or self.record.workflow.spec.retry or _NO_RETRY
        if outcome.retryable and task.attempt - task.attempt_base <= policy.limit:
            delay = (
                outcome.retry_delay
                if outcome.retry_delay is not None
                else (policy.backoff.delay(task.attempt))
            )
            self._set(task, P.RETRYING)
            task.error = error
            task.not_before = now + timedelta(seconds=delay)
            self._timers.append((task.not_before, name))
            self._event(
                E.TASK_RETRYING,
                now,
                task,
                notBefore=task.not_before.isoformat(),
                delaySeconds=delay,
                timedOut=outcome.status == "timed_out",
            )
            return
        timed_out = outcome.status == "timed_out"
        self._fail(task, now, error, E.TASK_TIMED_OUT if timed_out else E.TASK_FAILED)

    def _fail(
        self, task: TaskRecord, now: datetime, error: str, kind: EventKind = E.TASK_FAILED
    ) -> None:
        self.running.discard(task.name)
        self._set(task, P.FAILED)
        task.error = error
        task.finished_at = now
        self._finished(task, now, kind)

    def retry_due(self, name: str) -> None:
        """The retry of ``name`` timed by an effect is due: it is ready again
        (nothing happens if the run moved on meanwhile)."""
        task = self.instances.get(name)
        if task is not None and task.phase is P.RETRYING:
            self._ready.append(name)

    # -- control --------------------------------------------------------------------

    def apply_desired(self, desired: DesiredState, generation: int, now: datetime) -> None:
        """Act on control request ``generation``: converge to ``desired``.

        The generation is observed (and written with the next commit) even if
        the run has already finished: the request has been seen, and there is
        nothing left to do for it.
        """
        self._observe(generation)
        self.record.desired_state = desired
        if self.finished:
            return
        if desired is DesiredState.TERMINATED:
            self.stop(now)
        else:
            self._set_run_phase(live_phase(desired), now=now)

    def stop(self, now: datetime, message: str | None = None) -> None:
        """Terminate every unfinished task (cancelling attempts in flight) and end the run."""
        for task in self.instances.values():
            if task.phase.finished:
                continue
            if task.name in self.running:
                self._cancel.append(task.name)
                self.running.discard(task.name)
            self._set(task, P.TERMINATED)
            task.finished_at = now
            if message:
                task.error = message
            self._task_ended(task, now)
        self.unfinished = 0
        self._complete(now, message)

    def hand_back(self, now: datetime) -> None:
        """This engine gives the run up; the attempts it had in flight were cancelled.

        Each is queued for a new attempt that the next owner makes, with a log
        line on the interrupted attempt. The interruption is no fault of the
        task, so it does not count against the task's retry limit (``attempt_base``
        moves past it). Nothing else changes: the next owner rebuilds readiness
        from the database.
        """
        for name in sorted(self.running):
            task = self.instances[name]
            if task.phase is not P.RUNNING:
                continue
            self._set(task, P.QUEUED)
            task.attempt_base += 1
            self._log(
                task,
                "log",
                f"attempt {task.attempt} was interrupted: its engine handed the run back; "
                "it runs again as a new attempt\n",
                now,
            )
        self.running.clear()

    def deadline(self) -> datetime | None:
        timeout = self.record.workflow.spec.timeout_seconds
        if timeout is None or self.record.started_at is None:
            return None
        return self.record.started_at + timedelta(seconds=timeout)

    def counts(self) -> TaskCounts:
        """Task counts of the run, the same as its status shows (``get run``):
        a fanned-out task counts as its sub-tasks (one with none counts as
        itself). Kept up to date by every transition, so O(phases + fan-outs)."""
        counts = self._counts.copy()
        for parent, kids in self.children.items():
            if kids:
                counts[self.instances[parent].phase] -= 1
        return count_phases(counts)


def template_context(
    record: RunRecord, instances: dict[str, TaskRecord], task: TaskRecord
) -> dict[str, Any]:
    """What templates of ``task`` see: ``params``, ``tasks``, ``item``, ``index``, ``run``."""
    r = record
    return {
        "params": r.params,
        "tasks": TasksView(instances),
        "item": task.item,
        "index": task.index,
        "run": {
            "name": r.name,
            "namespace": r.namespace,
            "workflow": r.workflow_name,
            "attempt": task.attempt,
        },
        "schedule": {},
    }


#: Fields a sub-task spawned at run time takes from its spawn, not from its task's spec.
_SPAWN_OWN = frozenset({"args", "command"})


def templated_fields(spec: TaskSpec) -> tuple[tuple[str, Any], ...]:
    """The fields of :func:`~tideflow.model.templated.task_templates` that ``spec`` sets."""
    return tuple((path, value) for path, value in task_templates(spec) if value is not None)


def build_attempt(
    record: RunRecord,
    spec: TaskSpec,
    task: TaskRecord,
    instances: dict[str, TaskRecord],
    templated: tuple[tuple[str, Any], ...] | None = None,
) -> Attempt:
    """Attempt ``task.attempt`` of ``task``, every templated field rendered.

    The fields rendered are :func:`~tideflow.model.templated.task_templates`,
    the ones validation checks, so no template reaches an executor raw.
    ``templated`` is :func:`templated_fields` of ``spec`` if the caller keeps
    it; the template context is only built when a field is set.

    Raises:
        Exception: a template failed to render (the message says which).
    """
    spawned = task.index is not None and spec.for_each is None
    rendered: dict[str, Any] = {}
    if templated is None:
        templated = templated_fields(spec)
    if templated:
        context = template_context(record, instances, task)
        for path, value in templated:
            if not (spawned and path in _SPAWN_OWN):
                rendered[path] = render(value, context)
    if spawned:
        function, args = task.item["function"], dict(task.item.get("args") or {})
    else:
        function, args = spec.function, rendered.get("args") or {}
    container = spec.container
    if container is not None:
        container = container.model_copy(
            update={
                "command": _argv(rendered.get("container.command")),
                "args": _argv(rendered.get("container.args")),
                "env": _env(rendered.get("container.env")),
            }
        )
    working_dir = rendered.get("workingDir")
    return Attempt(
        run_id=record.id,
        run_name=record.name,
        namespace=record.namespace,
        workflow=record.workflow_name,
        task=task.name,
        spec=spec,
        number=task.attempt,
        index=task.index,
        item=task.item,
        function=function,
        args=args,
        command=_argv(rendered.get("command")),
        env=_env(rendered.get("env")),
        working_dir=str(working_dir) if working_dir is not None else None,
        container=container,
        params=record.params,
        timeout=spec.timeout_seconds,
    )


def _argv(value: list[Any] | None) -> list[str] | None:
    return [str(a) for a in value] if value is not None else None


def _env(value: dict[str, Any] | None) -> dict[str, str] | None:
    return {k: str(v) for k, v in value.items()} if value else None
