"""Task functions the engine tests run (referenced as ``tests.integration.tasks:NAME``)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from tideflow import PermanentError
from tideflow.engine.context import TaskContext

_concurrent = 0
peak = 0


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def echo(value: Any) -> Any:
    return value


def symbols(n: int) -> list[str]:
    return [f"S{i:02d}" for i in range(n)]


def price(symbol: str, context: TaskContext) -> dict[str, Any]:
    return {"symbol": symbol, "index": context.index, "price": 100 + int(symbol[1:])}


def boom(message: str = "boom") -> None:
    raise RuntimeError(message)


def refuse() -> None:
    raise PermanentError("bad credentials")


def flaky(marker: str, fail_times: int, context: TaskContext) -> int:
    """Fails ``fail_times`` attempts, then succeeds; returns the attempt number."""
    if context.attempt <= fail_times:
        raise RuntimeError(f"transient failure {context.attempt}")
    Path(marker).write_text(str(context.attempt))
    return context.attempt


def fail_once_per_file(marker: str) -> str:
    """Fails while ``marker`` does not exist (a fix applied between run retries)."""
    if not Path(marker).exists():
        raise RuntimeError("input not there yet")
    return "fixed"


def chatty(context: TaskContext) -> str:
    print("hello from print")
    context.logger.info("hello from the task logger")
    return "ok"


def pid() -> int:
    return os.getpid()


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


async def async_sleep(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


async def track(seconds: float = 0.05) -> int:
    """Record how many ``track`` tasks run at once (module global ``peak``)."""
    global _concurrent, peak
    _concurrent += 1
    peak = max(peak, _concurrent)
    try:
        await asyncio.sleep(seconds)
    finally:
        _concurrent -= 1
    return peak


def plan(n: int, context: TaskContext) -> None:
    for i in range(n):
        context.spawn(add, a=i, b=100)


def append(path: str, name: str, context: TaskContext, seconds: float = 0.0) -> str:
    """Append ``name attempt`` to ``path`` (the crash-recovery tests read it)."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{name} {context.attempt}\n")
        out.flush()
        os.fsync(out.fileno())
    time.sleep(seconds)
    return name


def not_json() -> object:
    return object()


def wait_for_file(path: str, timeout: float = 60.0) -> str:
    """Block until ``path`` exists: lets a test decide when the task finishes."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)
    return "released"
