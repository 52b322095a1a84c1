"""The group commit: one engine tick's :class:`~tideflow.engine.ports.Batch`, one transaction.

:meth:`SqlStore.commit <tideflow.storage.store.SqlStore.commit>` is the engine's
hot path, called once per loop tick with up to thousands of task transitions.
:func:`prepare` encodes the batch before any lock is taken; :func:`apply` runs
inside the transaction: it fences first (renews the lease of every run the batch
touches, on the condition that the engine still owns it), drops the writes of
runs it no longer owns, and writes the rest with one ``executemany`` per kind.

The batch's ``events`` are not written yet (there is no events table): they
are emitted to listeners after the commit, by the engine. A store that keeps
an event log would insert them here, in the same transaction as the
transitions they report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, func, insert, select, update

from tideflow.engine.ports import Batch, RunUpdate, TaskRecord
from tideflow.model import RunPhase
from tideflow.storage import pooling, rows
from tideflow.storage.tables import UtcDateTime, runs, task_instances, task_logs

#: Rewrites the mutable columns of one task instance; run with a list of parameter sets.
#: (Bind names carry a ``b_`` prefix: SQLAlchemy reserves the column names in SET.)
UPDATE_TASK = (
    update(task_instances)
    .where(
        task_instances.c.run_id == bindparam("b_run_id"),
        task_instances.c.name == bindparam("b_name"),
    )
    .values(
        phase=bindparam("b_phase"),
        attempt=bindparam("b_attempt"),
        output=bindparam("b_output"),
        error=bindparam("b_error"),
        started_at=bindparam("b_started_at", type_=UtcDateTime()),
        finished_at=bindparam("b_finished_at", type_=UtcDateTime()),
        not_before=bindparam("b_not_before", type_=UtcDateTime()),
        attempt_base=bindparam("b_attempt_base"),
    )
)

UPDATE_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("b_id"))
    .values(
        phase=bindparam("b_phase"),
        message=bindparam("b_message"),
        started_at=bindparam("b_started_at", type_=UtcDateTime()),
        finished_at=bindparam("b_finished_at", type_=UtcDateTime()),
        # NULL keeps the column: every parameter set of an executemany has the same keys.
        observed_generation=func.coalesce(
            bindparam("b_observed_generation", type_=Integer()), runs.c.observed_generation
        ),
    )
)

Params = dict[str, Any]


def task_update_params(task: TaskRecord, run_id: int | None = None) -> Params:
    """Parameters of :data:`UPDATE_TASK` for ``task`` (in run ``run_id`` if given)."""
    state = rows.task_state(task)
    return {
        "b_run_id": task.run_id if run_id is None else run_id,
        "b_name": task.name,
        **{f"b_{column}": value for column, value in state.items()},
    }


def _run_update_params(update: RunUpdate) -> Params:
    return {
        "b_id": update.run_id,
        "b_phase": RunPhase(update.phase).value,
        "b_message": update.message,
        "b_started_at": update.started_at,
        "b_finished_at": update.finished_at,
        "b_observed_generation": update.observed_generation,
    }


@dataclass(frozen=True)
class PreparedBatch:
    """A batch with every value encoded, each parameter set tagged with its run id."""

    batch: Batch
    task_inserts: list[tuple[int, Params]]
    task_updates: list[tuple[int, Params]]
    run_updates: list[tuple[int, Params]]
    logs: list[tuple[int, Params]]


def prepare(batch: Batch) -> PreparedBatch:
    """Encode ``batch`` (outputs to JSON); raises ``ValidationError`` for a non-JSON output."""
    return PreparedBatch(
        batch,
        task_inserts=[(t.run_id, rows.task_values(t, t.run_id, 0)) for t in batch.task_inserts],
        task_updates=[(t.run_id, task_update_params(t)) for t in batch.task_updates],
        run_updates=[(u.run_id, _run_update_params(u)) for u in batch.run_updates],
        logs=[(log.run_id, rows.log_values(log)) for log in batch.logs],
    )


def apply(connection: Connection, prepared: PreparedBatch) -> set[int]:
    """Write the batch inside the caller's transaction; return the runs whose ownership was lost."""
    batch = prepared.batch
    lost = fence(connection, batch)

    def kept(pairs: list[tuple[int, Params]]) -> list[Params]:
        return [params for run_id, params in pairs if run_id not in lost]

    # Inserts before updates: a child expanded and started in the same tick is both.
    if params := kept(prepared.task_inserts):
        number(connection, params)
        connection.execute(insert(task_instances), params)
    if params := kept(prepared.task_updates):
        connection.execute(UPDATE_TASK, params)
    if params := kept(prepared.run_updates):
        connection.execute(UPDATE_RUN, params)
    if params := kept(prepared.logs):
        connection.execute(insert(task_logs), params)
    if batch.slot_releases:
        pooling.release(connection, batch.owner, batch.slot_releases)
    if released := sorted(set(batch.release) - lost):
        connection.execute(
            update(runs)
            .where(runs.c.id.in_(released), runs.c.owner == batch.owner)
            .values(owner=None, lease_expires_at=None)
        )
    return lost


def fence(connection: Connection, batch: Batch) -> set[int]:
    """Renew the lease of every run the batch touches; return the runs no longer ours.

    One statement per run, because ``rowcount`` after ``executemany`` is not
    reliable across drivers, and a batch touches only a few runs. Ids go in
    ascending order so that competing transactions lock rows in the same order.
    On PostgreSQL and MariaDB the row lock taken here is held until commit, so
    no other engine can claim the run while this batch is being written.
    """
    lost: set[int] = set()
    for run_id in sorted(batch.run_ids()):
        result = connection.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.owner == batch.owner)
            .values(lease_expires_at=batch.lease_until)
        )
        if result.rowcount != 1:
            lost.add(run_id)
    return lost


def number(connection: Connection, task_rows: list[Params]) -> None:
    """Give new task instances ``seq`` numbers after those their runs already have."""
    run_ids = sorted({row["run_id"] for row in task_rows})
    query = (
        select(task_instances.c.run_id, func.max(task_instances.c.seq))
        .where(task_instances.c.run_id.in_(run_ids))
        .group_by(task_instances.c.run_id)
    )
    following = {run_id: top + 1 for run_id, top in connection.execute(query)}
    for row in task_rows:
        row["seq"] = following.get(row["run_id"], 0)
        following[row["run_id"]] = row["seq"] + 1
