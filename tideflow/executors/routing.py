"""Routes each attempt to the executor of its task's ``executor:`` kind.

The engine takes one executor; this one holds an executor per kind
(``local``, ``kubernetes``) and hands each attempt to the one its task asks
for. A kind with no executor registered in this engine fails the attempt
with a clear, non-retryable error, and cannot be reattached to.
"""

from __future__ import annotations

from collections.abc import Mapping

from tideflow.engine.execution import Attempt, Executor, Outcome, Reattachment, unavailable
from tideflow.executors.local import LocalExecutor
from tideflow.model import ExecutorKind

__all__ = ["RoutingExecutor", "engine_executor"]


class RoutingExecutor:
    """An :class:`~tideflow.engine.execution.Executor` that picks one per task's kind."""

    def __init__(self, executors: Mapping[ExecutorKind, Executor]) -> None:
        """Args:
        executors: The executor of each kind this engine runs (one executor
            may serve several kinds; it is closed once).
        """
        self._executors = dict(executors)

    @property
    def kinds(self) -> frozenset[ExecutorKind]:
        """The executor kinds this engine runs."""
        return frozenset(self._executors)

    async def execute(self, attempt: Attempt) -> Outcome:
        executor = self._executors.get(attempt.spec.executor)
        if executor is None:
            return unavailable(attempt.spec.executor, self._executors)
        return await executor.execute(attempt)

    async def reattach(self, attempt: Attempt) -> Reattachment:
        executor = self._executors.get(attempt.spec.executor)
        if executor is None:
            # Nothing here could have started it; a new attempt fails clearly (execute).
            return None
        return await executor.reattach(attempt)

    def close(self) -> None:
        closed: set[int] = set()
        for executor in self._executors.values():
            if id(executor) not in closed:
                closed.add(id(executor))
                executor.close()


def engine_executor(*, threads: int) -> RoutingExecutor:
    """The executor the command line and the client give their engines.

    Only local tasks run there today; the operator registers its Kubernetes
    executor next to the local one.

    Args:
        threads: Threads of the local executor for sync function tasks.
    """
    return RoutingExecutor({ExecutorKind.LOCAL: LocalExecutor(threads=threads)})
