"""``--wait``: drive a run in this process (or follow it), with live progress."""

from __future__ import annotations

import asyncio
import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tideflow.cli import render
from tideflow.config import Settings
from tideflow.engine.ports import RunRecord, Store
from tideflow.engine.reconciler import Engine, Event
from tideflow.executors.local import LocalExecutor
from tideflow.model import RunPhase, TaskPhase

_DONE = {"Succeeded", "Failed", "Skipped", "UpstreamFailed", "Terminated"}


def build_engine(store: Store, settings: Settings) -> Engine:
    return Engine(
        store, LocalExecutor(threads=settings.executor_threads()), settings.engine_settings()
    )


def wait_for(store: Store, settings: Settings, run: RunRecord) -> int:
    """Drive ``run`` to its end and print a summary; the exit status to use."""
    engine = build_engine(store, settings)
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
        if event.counts is None:
            return
        counts = event.counts
        total = sum(counts.values())
        done = sum(n for phase, n in counts.items() if phase in _DONE)
        detail = " ".join(
            f"{phase.lower()}={n}"
            for phase, n in sorted(counts.items())
            if n and phase not in ("Pending",)
        )
        progress.update(bar, total=total, completed=min(done, total), detail=detail)

    engine.listeners.append(on_event)
    started = time.monotonic()
    with progress:
        final = asyncio.run(engine.drive(run.id))
    return summarize(store, final, time.monotonic() - started)


def summarize(store: Store, run: RunRecord, elapsed: float | None = None) -> int:
    tasks = store.list_tasks(run.id)
    counts = render.task_counts(tasks)
    took = f" in {elapsed:.1f}s" if elapsed is not None else ""
    parts = [
        f"{n} {label}"
        for label, n in (
            ("succeeded", counts.succeeded),
            ("failed", counts.failed),
            ("upstream-failed", counts.upstream_failed),
            ("skipped", counts.skipped),
            ("terminated", counts.terminated),
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
