"""Helpers for engine tests: build workflows, run them to the end, wait for states."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from tideflow.engine import control
from tideflow.engine.ports import RunRecord, Store, TaskRecord
from tideflow.engine.reconciler import Engine, EngineSettings
from tideflow.executors.local import LocalExecutor
from tideflow.model import Workflow

#: Poll control requests often so tests do not wait on the production default.
FAST = EngineSettings(poll_seconds=0.05, lease_seconds=5)


def workflow(*tasks: dict[str, Any], name: str = "test-flow", **spec: Any) -> Workflow:
    return Workflow.model_validate(
        {"metadata": {"name": name}, "spec": {"tasks": list(tasks), **spec}}
    )


def engine(store: Store, settings: EngineSettings = FAST, **kwargs: Any) -> Engine:
    return Engine(store, LocalExecutor(threads=8), settings, **kwargs)


async def execute(
    store: Store,
    wf: Workflow,
    params: dict[str, Any] | None = None,
    *,
    settings: EngineSettings = FAST,
) -> tuple[RunRecord, dict[str, TaskRecord]]:
    """Submit a run of ``wf`` and drive it to its end in this process."""
    run = control.submit_run(store, wf, params)
    final = await engine(store, settings).drive(run.id)
    return final, {t.name: t for t in store.list_tasks(run.id)}


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until ``condition()`` holds (checked off the event loop's critical path)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not: it is dead for our purpose)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
