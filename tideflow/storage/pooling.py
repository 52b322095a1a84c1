"""Pool slots shared by every engine on one database.

An engine asks for slots for the pooled tasks it wants to start; the pool's
row is locked while its holdings are counted, so two engines never both take
the last slot. A holding counts only while its owner still owns the run
(``pool_slots.owner = runs.owner``): when an engine dies and another claims
its runs, the dead engine's slots stop counting without anyone cleaning up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, delete, exc, func, insert, select, tuple_

from tideflow.model import FINISHED_RUN_PHASES
from tideflow.storage.tables import pool_slots, pools, runs

FINISHED = sorted(phase.value for phase in FINISHED_RUN_PHASES)


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
    capacity: int,
    wanted: Sequence[tuple[int, str]],
    now: datetime,
) -> list[tuple[int, str]]:
    """Take up to ``capacity`` minus the live holdings of ``pool`` for ``wanted``, in order."""
    connection.execute(select(pools.c.name).where(pools.c.name == pool).with_for_update())
    live = connection.execute(
        select(func.count())
        .select_from(pool_slots.join(runs, runs.c.id == pool_slots.c.run_id))
        .where(
            pool_slots.c.pool == pool,
            pool_slots.c.owner == runs.c.owner,
            runs.c.phase.not_in(FINISHED),
        )
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
