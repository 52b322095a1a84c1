"""``--wait``: drive a run in this process (or follow it), with live progress.

The terminal shows a progress bar, one line per failed task as it fails, and
a summary at the end; what tasks print or log goes to their attempts' logs
in the database only (``verbose`` streams their log records too). SIGINT or
SIGTERM stops waiting cleanly: a run this process drives is handed back for a
server to continue, and the exit status is 128 + the signal's number.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from tideflow.cli import render
from tideflow.engine import status
from tideflow.engine.ports import RunRecord, Store
from tideflow.engine.reconciler import Driven, Ending, Engine, Event
from tideflow.executors import capture
from tideflow.model import EventKind, RunPhase, TaskCounts, TaskPhase
from tideflow.service import Services
from tideflow.service import build_engine as build_engine  # `tideflow server`'s

#: Events that end a task instance in failure: each gets a line above the bar.
_FAILURES = frozenset({EventKind.TASK_FAILED, EventKind.TASK_TIMED_OUT})
#: The signals that stop waiting; the exit status is 128 + the signal's number.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def wait_for(services: Services, run: RunRecord, *, verbose: bool = False) -> int:
    """Drive ``run`` until it finishes, showing progress, and return the exit status.

    If another engine owns the run, this follows it instead. On SIGINT or
    SIGTERM it stops: a run this process owns is handed back at once
    (attempts in flight are killed and will run again on the next owner; the
    lease is released so a server continues without waiting for it to
    expire); a followed run just continues on its engine. One line on stderr
    says which.

    Args:
        services: The database and settings; they build the engine.
        run: The run to wait for.
        verbose: Also show the log records tasks emit, above the progress bar.

    Returns:
        0 if the run Succeeded, 1 if it finished otherwise, 130 after SIGINT
        and 143 after SIGTERM.
    """
    engine = services.engine()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=render.errors,
        transient=False,
    )
    bar = progress.add_task(run.name, total=None, detail="starting")

    def on_event(event: Event) -> None:
        if event.kind in _FAILURES and event.task is not None:
            progress.console.print(failure_line(event.task, event.attempt, event.error))
        if event.counts is None:
            return
        counts = event.counts
        done = min(status.finished(counts), counts.total)
        progress.update(bar, total=counts.total, completed=done, detail=detail(counts))

    engine.listeners.append(on_event)
    echo = _AttemptEcho(progress.console) if verbose else None
    task_logger = logging.getLogger(capture.TASK_LOGGER)
    task_level = task_logger.level
    if echo is not None:
        # This command line is the entry point: it may configure logging for
        # its duration. Task loggers store every record with their attempt;
        # at DEBUG here they also pass them on to the echo.
        task_logger.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(echo)
    started = time.monotonic()
    try:
        # In a terminal, rich routes sys.stdout/stderr above the bar; each
        # attempt routes them (that proxy, then) to its own log while it runs.
        with progress:
            driven, signum = asyncio.run(_drive(engine, run.id))
    finally:
        if echo is not None:
            logging.getLogger().removeHandler(echo)
            task_logger.setLevel(task_level)
    if driven.ending is Ending.FINISHED:
        return summarize(services.store, driven.record, time.monotonic() - started)
    name = driven.record.name
    if driven.ending is Ending.HANDED_BACK or driven.record.owner is None:
        message = (
            f"run {name} handed back: a server will continue it; "
            f'"tideflow terminate {name}" stops it'
        )
    else:
        message = f"stopped following run {name}; it continues on its engine"
    render.errors.print(message, markup=False, highlight=False)
    return 128 + (signum or int(signal.SIGINT))


async def _drive(engine: Engine, run_id: int) -> tuple[Driven, int | None]:
    """Drive the run with SIGINT and SIGTERM stopping the engine; returns how
    driving ended and the signal that stopped it, if any."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        # The first signal stops the engine. Later ones (a second Ctrl-C while the
        # run is being handed back) are ignored: interrupting the hand-back would
        # leave the run owned until its lease expires, and print a traceback.
        if not received:
            received.append(signum)
            stop.set()

    installed: list[signal.Signals] = []
    for sig in _STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_signal, int(sig))
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or no signals here: nothing can stop it but its end
        installed.append(sig)
    try:
        driven = await engine.drive_until(run_id, stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)  # back to the default handlers
    return driven, received[0] if received else None


def failure_line(task: str, attempt: int | None, error: str | None) -> Text:
    """``✗ TASK (attempt N): ERROR``, the line a failed task gets."""
    line = Text("✗ ", style="red")
    line.append(task if attempt is None else f"{task} (attempt {attempt})")
    if error:
        line.append(": ")
        line.append(error)
    return line


def detail(counts: TaskCounts) -> str:
    """The progress bar's detail: the run's task counts (its status's), named by
    phase (``Running=2 Succeeded=7 UpstreamFailed=1``), in the state machine's
    order; tasks not started yet (or waiting to retry) are what the bar lacks."""
    return " ".join(f"{phase.value}={n}" for phase, n in _by_phase(counts) if n)


def _by_phase(counts: TaskCounts) -> list[tuple[TaskPhase, int]]:
    """The counts of finished and running tasks, keyed by the phase they count."""
    return [
        (TaskPhase.RUNNING, counts.running),
        (TaskPhase.SUCCEEDED, counts.succeeded),
        (TaskPhase.FAILED, counts.failed),
        (TaskPhase.SKIPPED, counts.skipped),
        (TaskPhase.UPSTREAM_FAILED, counts.upstream_failed),
        (TaskPhase.TERMINATED, counts.terminated),
    ]


class _AttemptEcho(logging.Handler):
    """Shows the log records tasks emit, above the progress bar (``verbose``).

    They are stored with their attempts either way; the terminal handler of
    the command line drops them (``capture.OutsideAttempts``)."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        if not capture.inside_attempt(record):
            return  # an engine record: the command line's own handler shows it
        log = capture.current.get()
        try:
            label = log.label if log is not None else ""
            text = f"{label}: {self.format(record)}" if label else self.format(record)
            with capture.outside_attempt():  # else the line would go to the attempt's log
                self._console.print(Text(text, style="dim"))
        except Exception:
            self.handleError(record)


def summarize(store: Store, run: RunRecord, elapsed: float | None = None) -> int:
    tasks = store.list_tasks(run.id)
    counts = status.run_status(run, tasks).tasks
    took = f" in {elapsed:.1f}s" if elapsed is not None else ""
    parts = [
        f"{n} {phase.value}"
        for phase, n in (
            (TaskPhase.SUCCEEDED, counts.succeeded),
            (TaskPhase.FAILED, counts.failed),
            (TaskPhase.UPSTREAM_FAILED, counts.upstream_failed),
            (TaskPhase.SKIPPED, counts.skipped),
            (TaskPhase.TERMINATED, counts.terminated),
        )
        if n
    ]
    colour = "green" if run.phase is RunPhase.SUCCEEDED else "red"
    render.console.print(
        f"run [bold]{run.name}[/bold] [{colour}]{run.phase.value}[/{colour}]{took}: "
        + (", ".join(parts) or "no tasks")
    )
    if run.message:
        render.console.print(f"  {run.message}", markup=False)
    failed = [t for t in tasks if t.phase is TaskPhase.FAILED and t.error]
    for task in failed[:10]:
        render.console.print(f"  [red]✗[/red] {task.name} (attempt {task.attempt}): ", end="")
        render.console.print(task.error, markup=False)
    if failed:
        render.console.print(f"  see: tideflow logs {run.name} {failed[0].task}", markup=False)
    return 0 if run.phase is RunPhase.SUCCEEDED else 1
