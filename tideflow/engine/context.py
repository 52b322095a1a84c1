"""``TaskContext``: what a Python task function receives as its ``context`` argument."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tideflow.definition.functions import reference_of
from tideflow.engine.execution import Spawn

logger = logging.getLogger("tideflow.task")


@dataclass
class TaskContext:
    """Facts about the running attempt, a logger whose records are kept with it,
    and :meth:`spawn` to fan out at run time.

    Example::

        def plan(symbols: list[str], context: TaskContext) -> None:
            for symbol in symbols:
                context.spawn("examples.quant:fetch_bars", symbol=symbol, date="2026-11-30")
    """

    run: str
    namespace: str
    workflow: str
    task: str
    attempt: int
    index: int | None = None
    item: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    logger: logging.Logger = logger
    spawned: list[Spawn] = field(default_factory=list)

    def spawn(self, function: str | Callable[..., Any], /, **args: Any) -> int:
        """Add a sub-task named ``<task>[i]`` running ``function(**args)``; returns ``i``.

        Sub-tasks start once this function returns. This task then finishes when
        they all have, and its output is the list of their outputs in index
        order, exactly as with ``forEach``.
        """
        ref = function if isinstance(function, str) else reference_of(function)
        self.spawned.append(Spawn(ref, dict(args)))
        return len(self.spawned) - 1
