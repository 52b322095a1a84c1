"""The in-memory state of one owned run, and the rules that move it forward.

:class:`RunState` is the reconciler's working copy of a run: its task
instances (loaded from the store when the run was claimed), per-task counters
of unfinished upstream tasks, and a queue of tasks ready to start. Applying an
event (an attempt finished, a retry is due, the user terminated the run)
touches only the task and its direct successors, so the cost of a transition
does not grow with the size of the DAG.

Nothing here does I/O: every change is recorded in ``dirty``/``inserts`` and
written by the reconciler in the next group commit, before any of its
consequences (attempts started, events emitted) happen.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Any

from tideflow.dag import Graph
from tideflow.engine.execution import Attempt, Outcome, Spawn
from tideflow.engine.ports import LogRecord, RunRecord, RunUpdate, TaskRecord
from tideflow.engine.transitions import (
    Readiness,
    can_transition,
    fan_in,
    live_phase,
    readiness,
    run_outcome,
)
from tideflow.model import DesiredState, RetryPolicy, RunPhase, TaskPhase, TaskSpec
from tideflow.templating import TaskView, render

logger = logging.getLogger(__name__)

P = TaskPhase
_NO_RETRY = RetryPolicy()


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

    def __init__(self, record: RunRecord, tasks: list[TaskRecord], now: datetime) -> None:
        self.record = record
        self.specs: dict[str, TaskSpec] = {t.name: t for t in record.workflow.spec.tasks}
        self.graph = Graph.from_tasks(record.workflow.spec.tasks)
        self.instances: dict[str, TaskRecord] = {}
        self.children: dict[str, list[TaskRecord]] = {}
        self.open_children: dict[str, int] = {}
        self.remaining: dict[str, int] = {}
        self.unfinished = 0
        self.ready: deque[str] = deque()
        #: Instances with an attempt in flight on this engine.
        self.running: set[str] = set()
        self.dirty: dict[str, TaskRecord] = {}
        self.inserts: list[TaskRecord] = []
        self.logs: list[LogRecord] = []
        self.run_dirty = False
        #: Retries that became due at ``not_before``: (time, instance name).
        self.new_timers: list[tuple[datetime, str]] = []
        #: Attempts to cancel after the next commit.
        self.to_cancel: list[str] = []
        self.events: list[tuple[str, str | None]] = []
        self.seen_generation = record.generation
        self._counts: Counter[TaskPhase] = Counter()
        self._adopt(tasks, now)

    # -- loading ----------------------------------------------------------------

    def _adopt(self, tasks: list[TaskRecord], now: datetime) -> None:
        """Rebuild counters from persisted instances; close attempts lost with a dead engine."""
        for task in tasks:
            self.instances[task.name] = task
            self._counts[task.phase] += 1
            if task.index is not None:
                self.children.setdefault(task.task, []).append(task)
        for kids in self.children.values():
            kids.sort(key=lambda t: t.index or 0)
        for parent, kids in self.children.items():
            self.open_children[parent] = sum(1 for k in kids if not k.phase.finished)
        for name in self.graph.order:
            upstream = self.graph.upstream[name]
            self.remaining[name] = sum(1 for u in upstream if not self.instances[u].phase.finished)
        terminating = self.record.desired_state is DesiredState.TERMINATED
        for task in tasks:
            if task.phase.finished:
                continue
            self.unfinished += 1
            if task.phase is P.RUNNING and not self._is_waiting_parent(task):
                # Its engine died mid-attempt: run it again as a new attempt, unless
                # the run is being terminated (just below).
                again = "" if terminating else "; it runs again as a new attempt"
                self._log(
                    task, "log", f"attempt {task.attempt} was lost with its engine{again}\n", now
                )
                if not terminating:
                    self._set(task, P.QUEUED)
                    self.ready.append(task.name)
            elif task.phase is P.QUEUED:
                self.ready.append(task.name)
            elif task.phase is P.RETRYING:
                self.new_timers.append((task.not_before or now, task.name))
            elif (
                task.phase is P.PENDING
                and task.index is not None
                and self.instances[task.task].phase is P.RUNNING
            ):
                self.ready.append(task.name)
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

    def _set_run_phase(self, phase: RunPhase, message: str | None = None) -> None:
        if self.record.phase is not phase or message != self.record.message:
            self.record.phase = phase
            self.record.message = message
            self.run_dirty = True
            self.events.append((f"Run{phase.value}", None))

    def take_writes(
        self,
    ) -> tuple[list[RunUpdate], list[TaskRecord], list[TaskRecord], list[LogRecord]]:
        runs: list[RunUpdate] = []
        if self.run_dirty:
            r = self.record
            runs.append(RunUpdate(r.id, r.phase, r.message, r.started_at, r.finished_at))
            self.run_dirty = False
        inserts, self.inserts = self.inserts, []
        # Inserted rows carry their latest state already; do not update them twice.
        for task in inserts:
            self.dirty.pop(task.name, None)
        updates = list(self.dirty.values())
        self.dirty.clear()
        logs, self.logs = self.logs, []
        return runs, inserts, updates, logs

    # -- readiness ------------------------------------------------------------------

    def _decide(self, name: str, now: datetime) -> None:
        """All upstream tasks of ``name`` finished: run it, skip it, or fail it."""
        task = self._verdict(name, now)
        if task is not None:
            self._finished(task, now)

    def _verdict(self, name: str, now: datetime) -> TaskRecord | None:
        """Apply the trigger rule of ``name``: queue it, or finish it (returned) as
        Skipped or UpstreamFailed without running it."""
        spec = self.specs[name]
        upstream = (self.instances[u].phase for u in self.graph.upstream[name])
        verdict = readiness(spec.trigger_rule, upstream)
        if verdict is Readiness.RUN:
            self.ready.append(name)
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
            self.events.append((f"Task{phase.value}", kid.name))

    def _finished(self, first: TaskRecord, now: datetime) -> None:
        """Propagate the end of ``first`` to its parent or its successors (iteratively)."""
        stack = [first]
        while stack:
            task = stack.pop()
            self.unfinished -= 1
            self.events.append((f"Task{task.phase.value}", task.name))
            if task.index is not None:
                parent = self.instances[task.task]
                self.open_children[parent.name] -= 1
                if self.open_children[parent.name] == 0:
                    self._close_parent(parent, now)
                    stack.append(parent)
                continue
            for successor in self.graph.downstream[task.name]:
                self.remaining[successor] -= 1
                if self.remaining[successor] == 0 and self.instances[successor].phase is P.PENDING:
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
        self.ready.clear()
        self._set_run_phase(phase, message)

    # -- dispatch -------------------------------------------------------------------

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
            self.ready.extend(k.name for k in kids if k.phase is P.PENDING)
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
            self.ready.append(kid.name)
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
        function = spec.function
        args: dict[str, Any]
        try:
            context = self.template_context(task)
            if task.index is not None and spec.for_each is None:  # spawned at run time
                function, args = task.item["function"], dict(task.item.get("args") or {})
                command = None
            else:
                args = render(spec.args or {}, context)
                command = render(spec.command, context) if spec.command is not None else None
            env = render(spec.env, context) if spec.env else None
        except Exception as exc:
            self._fail(task, now, f"cannot render the task's inputs: {exc}")
            return None
        self._set(task, P.RUNNING)
        self.running.add(task.name)
        self.events.append(("TaskRunning", task.name))
        r = self.record
        return Attempt(
            run_id=r.id,
            run_name=r.name,
            namespace=r.namespace,
            workflow=r.workflow_name,
            task=task.name,
            spec=spec,
            number=task.attempt,
            index=task.index,
            item=task.item,
            function=function,
            args=args,
            command=[str(a) for a in command] if command is not None else None,
            env={k: str(v) for k, v in env.items()} if env else None,
            params=r.params,
            timeout=spec.timeout_seconds,
        )

    def template_context(self, task: TaskRecord) -> dict[str, Any]:
        r = self.record
        return {
            "params": r.params,
            "tasks": TasksView(self.instances),
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
            self.new_timers.append((task.not_before, name))
            self.events.append(("TaskRetrying", name))
            return
        self._fail(task, now, error)

    def _fail(self, task: TaskRecord, now: datetime, error: str) -> None:
        self.running.discard(task.name)
        self._set(task, P.FAILED)
        task.error = error
        task.finished_at = now
        self._finished(task, now)

    def retry_due(self, name: str) -> None:
        task = self.instances.get(name)
        if task is not None and task.phase is P.RETRYING:
            self.ready.append(name)

    # -- control --------------------------------------------------------------------

    def apply_desired(self, desired: DesiredState, generation: int, now: datetime) -> None:
        self.seen_generation = generation
        self.record.desired_state = desired
        if self.finished:
            return
        if desired is DesiredState.TERMINATED:
            self.stop(now)
        else:
            self._set_run_phase(live_phase(desired))

    def stop(self, now: datetime, message: str | None = None) -> None:
        """Terminate every unfinished task (cancelling attempts in flight) and end the run."""
        for task in self.instances.values():
            if task.phase.finished:
                continue
            if task.name in self.running:
                self.to_cancel.append(task.name)
                self.running.discard(task.name)
            self._set(task, P.TERMINATED)
            task.finished_at = now
            if message:
                task.error = message
            self.events.append(("TaskTerminated", task.name))
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

    def counts(self) -> dict[str, int]:
        """Task instances that do work, per phase: a fanned-out task counts as its
        sub-tasks (as in ``get run``). Kept up to date by every transition."""
        counts = self._counts.copy()
        for parent in self.children:
            counts[self.instances[parent].phase] -= 1
        return {phase.value: n for phase, n in counts.items() if n}
