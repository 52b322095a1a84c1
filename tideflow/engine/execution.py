"""The executor port: what the engine hands an executor and what it gets back.

An executor runs one attempt of one task instance and reports an
:class:`Outcome`; it never touches the database. Cancelling the coroutine
returned by :meth:`Executor.execute` must stop the attempt (kill its process
and children) before the cancellation propagates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tideflow.model import TaskSpec

Stream = Literal["stdout", "stderr", "log"]


@dataclass(slots=True)
class Attempt:
    """One attempt of one task instance, with its inputs already rendered."""

    run_id: int
    run_name: str
    namespace: str
    workflow: str
    #: Instance name: ``fetch-bars`` or ``fetch-bars[3]``.
    task: str
    spec: TaskSpec
    number: int
    index: int | None = None
    item: Any = None
    #: ``module:attr`` to call; differs from ``spec.function`` for spawned sub-tasks.
    function: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    command: list[str] | None = None
    env: dict[str, str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(slots=True)
class Spawn:
    """A sub-task requested at run time by ``context.spawn``."""

    function: str
    args: dict[str, Any]

    def to_item(self) -> dict[str, Any]:
        return {"function": self.function, "args": self.args}


@dataclass(slots=True)
class Outcome:
    status: Literal["succeeded", "failed", "timed_out"]
    output: Any = None
    error: str | None = None
    #: False for ``PermanentError``: no further attempts.
    retryable: bool = True
    #: Set by ``TemporaryError(delay=...)``: overrides the backoff once.
    retry_delay: float | None = None
    spawned: list[Spawn] = field(default_factory=list)
    logs: list[tuple[Stream, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class Executor(Protocol):
    async def execute(self, attempt: Attempt) -> Outcome:
        """Run the attempt to its end, honouring ``attempt.timeout``."""

    def close(self) -> None:
        """Release threads and processes; running attempts are abandoned."""
