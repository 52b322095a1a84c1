"""Pools: ``tideflow pool set NAME N``, and how ``tideflow get pools`` shows them.

A pool's capacity is stored with the pool in the database, and every engine
on that database counts against it. The ``pools`` of the settings are written
there by each engine when it starts (``tideflow server``, ``run --wait``):
configuration as code. ``pool set`` changes the stored value directly, at
once for every running engine, until an engine whose settings name that pool
starts again. ``get pools`` shows what is stored, with the slots in use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from tideflow.cli import render
from tideflow.cli.render import console, errors
from tideflow.cli.session import Output, checked_name, global_options, session
from tideflow.engine.ports import PoolRecord, Store
from tideflow.errors import NotFoundError

CONTEXT = {"help_option_names": ["-h", "--help"]}

COLUMNS = ["NAME", "CAPACITY", "IN USE"]


def _name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    checked = checked_name(value, "'NAME'")
    assert checked is not None  # a required argument
    return checked


@click.group(context_settings=CONTEXT)
@global_options
def pool() -> None:
    """Pool capacities, shared by every engine on the database (list them: get pools)."""


@pool.command("set", context_settings=CONTEXT)
@click.argument("name", metavar="NAME", callback=_name)
@click.argument("capacity", metavar="N", type=click.IntRange(min=1))
@global_options
def pool_set(name: str, capacity: int) -> None:
    """Give pool NAME N slots, shared by every engine on the database.

    Running engines count against the new capacity at their next request for
    slots; attempts holding slots above a lowered capacity finish. An engine
    whose settings name the pool stores its own capacity again when it starts.
    """
    session().store().set_pool_capacity(name, capacity)
    console.print(f"pool/{name} capacity set to {capacity}", markup=False)


def document(record: PoolRecord) -> dict[str, Any]:
    """A pool as ``-o json|yaml`` print it."""
    return {"name": record.name, "capacity": record.capacity, "inUse": record.in_use}


def get_pools(store: Store, name: str | None, fmt: Output) -> None:
    """``tideflow get pools [NAME]``: every stored pool (pools have no namespace)."""
    records = store.list_pools()
    if name is not None:
        records = [r for r in records if r.name == name]
        if not records:
            raise NotFoundError(f'pool "{name}" not found')
    elif not records and fmt in (Output.TABLE, Output.WIDE, Output.NAME):
        errors.print("No pools found.", markup=False)
        return
    print_pools(records, fmt, single=name is not None)


def print_pools(records: Sequence[PoolRecord], fmt: Output, *, single: bool) -> None:
    if fmt in (Output.TABLE, Output.WIDE):
        render.table(COLUMNS, [[r.name, r.capacity, r.in_use] for r in records])
    elif fmt is Output.NAME:
        for r in records:
            console.print(f"pool/{r.name}", markup=False)
    else:
        docs = [document(r) for r in records]
        render.emit(docs[0] if single else docs, fmt)


COMMANDS = [pool]
