"""Pool slots shared by every engine on one database.

An engine asks for slots for the pooled tasks it wants to start; the pool's
row is locked while its holdings are counted, so two engines never both take
the last slot. A holding counts only while its owner still owns the run
(``pool_slots.owner = runs.owner``): when an engine dies and another claims
its runs, the dead engine's slots stop counting without anyone cleaning up.

A pool's capacity lives in its row, so every engine on the database counts
against the same number: :func:`acquire` reads it from the locked row (a
capacity never set, NULL, is :data:`DEFAULT_CAPACITY`), and
:func:`set_capacity` writes it (``tideflow pool set``, or an engine publishing
the pools of its settings when it starts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    delete,
    exc,
    func,
    insert,
    select,
    tuple_,
    update,
)

from tideflow.engine.ports import PoolRecord
from tideflow.model import FINISHED_RUN_PHASES
from tideflow.storage.tables import pool_slots, pools, runs

FINISHED = sorted(phase.value for phase in FINISHED_RUN_PHASES)

#: Slots of a pool whose capacity was never set: safe for the rate-limited APIs
#: pools exist for.
DEFAULT_CAPACITY = 1


def _live() -> ColumnElement[bool]:
    """A holding counts while its owner owns the run and the run is unfinished."""
    return and_(pool_slots.c.owner == runs.c.owner, runs.c.phase.not_in(FINISHED))


def ensure_pool(connection: Connection, pool: str) -> None:
    """Create the pool's lock row if it is missing (a concurrent creator is fine)."""
    if connection.execute(select(pools.c.name).where(pools.c.name == pool)).first() is None:
        try:
            with connection.begin_nested():
                connection.execute(insert(pools).values(name=pool))
        except exc.IntegrityError:
            pass  # another engine created it first


def acquire(
    connection: Connection,
    owner: str,
    pool: str,
    wanted: Sequence[tuple[int, str]],
    now: datetime,
) -> list[tuple[int, str]]:
    """Take slots of ``pool`` for ``wanted``, in order, while fewer than its stored
    capacity are held; the pool's row must exist (:func:`ensure_pool`)."""
    stored = connection.execute(
        select(pools.c.capacity).where(pools.c.name == pool).with_for_update()
    ).scalar_one()
    capacity = DEFAULT_CAPACITY if stored is None else int(stored)
    live = connection.execute(
        select(func.count())
        .select_from(pool_slots.join(runs, runs.c.id == pool_slots.c.run_id))
        .where(pool_slots.c.pool == pool, _live())
    ).scalar_one()
    granted = list(wanted[: max(0, capacity - live)])
    if granted:
        # A stale holding of the same task (left by an engine that died) is replaced.
        connection.execute(
            delete(pool_slots).where(tuple_(pool_slots.c.run_id, pool_slots.c.task).in_(granted))
        )
        connection.execute(
            insert(pool_slots),
            [
                {"run_id": run_id, "task": task, "pool": pool, "owner": owner, "acquired_at": now}
                for run_id, task in granted
            ],
        )
    return granted


def set_capacity(connection: Connection, pool: str, capacity: int) -> None:
    """Store ``pool``'s capacity, creating the pool if it is missing.

    Holdings above a lowered capacity stay until their attempts end; no new
    slot is granted until the pool is below it.
    """
    ensure_pool(connection, pool)
    connection.execute(update(pools).where(pools.c.name == pool).values(capacity=capacity))


def list_pools(connection: Connection) -> list[PoolRecord]:
    """Every stored pool by name, with its capacity and live holdings as
    :func:`acquire` counts them."""
    in_use = (
        select(pool_slots.c.pool, func.count().label("in_use"))
        .select_from(pool_slots.join(runs, runs.c.id == pool_slots.c.run_id))
        .where(_live())
        .group_by(pool_slots.c.pool)
        .subquery()
    )
    query = (
        select(pools.c.name, pools.c.capacity, func.coalesce(in_use.c.in_use, 0))
        .select_from(pools.outerjoin(in_use, in_use.c.pool == pools.c.name))
        .order_by(pools.c.name)
    )
    return [
        PoolRecord(
            name=name,
            capacity=DEFAULT_CAPACITY if capacity is None else int(capacity),
            in_use=int(used),
        )
        for name, capacity, used in connection.execute(query)
    ]


RELEASE = delete(pool_slots).where(
    and_(
        pool_slots.c.run_id == bindparam("b_run_id"),
        pool_slots.c.task == bindparam("b_task"),
        pool_slots.c.owner == bindparam("b_owner"),
    )
)


def release(connection: Connection, owner: str, slots: Sequence[tuple[int, str]]) -> None:
    """Give back slots; only the owner's own holdings are removed."""
    connection.execute(
        RELEASE, [{"b_run_id": run_id, "b_task": task, "b_owner": owner} for run_id, task in slots]
    )


def forget_run(connection: Connection, run_id: int) -> None:
    """Drop every holding of a run that is being claimed: none of its attempts runs now."""
    connection.execute(delete(pool_slots).where(pool_slots.c.run_id == run_id))
