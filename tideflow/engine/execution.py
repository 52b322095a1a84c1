"""The executor port: what the engine hands an executor and what it gets back.

An executor runs one attempt of one task instance and reports an
:class:`Outcome`; it never touches the database. Cancelling the coroutine
returned by :meth:`Executor.execute` must stop the attempt (kill its process
and children) before the cancellation propagates.

An attempt carries its inputs rendered: executors read ``args``, ``command``,
``env``, ``working_dir`` and ``container`` from the :class:`Attempt`, never
templates from ``attempt.spec`` (the fields rendered are those of
:func:`tideflow.model.templated.task_templates`, which validation checks).
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

from tideflow.model import ContainerSpec, ExecutorKind, TaskSpec

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
    #: Rendered ``workingDir``: where commands and task processes start.
    working_dir: str | None = None
    #: ``spec.container`` with its ``command``, ``args`` and ``env`` rendered.
    container: ContainerSpec | None = None
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


def unavailable(kind: ExecutorKind, available: Iterable[ExecutorKind]) -> Outcome:
    """The outcome of an attempt whose executor kind this engine does not run.

    Not retryable: another attempt on the same engine would fail the same way.

    Args:
        kind: The kind the task asks for.
        available: The kinds this engine runs.
    """
    kinds = " and ".join(k.value for k in sorted(available)) or "no"
    return Outcome(
        "failed",
        error=f"executor {kind.value!r} is not available in this engine; "
        f"only {kinds} tasks run here",
        retryable=False,
    )


#: What :meth:`Executor.reattach` found for an attempt a dead engine had started:
#:
#: * an :class:`Outcome`: the attempt ended meanwhile, and this is how;
#: * a coroutine: the attempt still runs, and awaiting the coroutine follows it
#:   to its outcome (cancelling it must stop the attempt, as for ``execute``);
#: * None: the attempt cannot be found or followed; the engine closes it as
#:   lost and runs the task again as a new attempt.
Reattachment: TypeAlias = Outcome | Coroutine[Any, Any, Outcome] | None


class Executor(Protocol):
    async def execute(self, attempt: Attempt) -> Outcome:
        """Run the attempt to its end, honouring ``attempt.timeout``."""

    async def reattach(self, attempt: Attempt) -> Reattachment:
        """Find an attempt that an engine which is gone had started, to continue it.

        Called when a run is claimed, for each task instance its previous
        owner left Running, before anything of the run starts here. The
        attempt is built as it was started (same number, same rendered
        inputs). It must answer promptly: following a still-running attempt
        belongs in the returned coroutine, not here.

        Args:
            attempt: The attempt the previous owner started.

        Returns:
            See :data:`Reattachment`. Executors whose attempts die with their
            engine (processes, threads) return None.
        """

    def close(self) -> None:
        """Release threads and processes; running attempts are abandoned."""
