"""``get … -w`` and ``logs -f``: follow state through the database as it changes.

Watches poll the database (a cheap indexed read every ``INTERVAL`` seconds),
so they work against any engine on any backend. A watch prints the current
state once, then one line (or one object, with ``-o json|yaml``) for every
change, until Ctrl-C — or until the run ends, when one run is watched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from tideflow.cli import render
from tideflow.cli.render import console
from tideflow.cli.session import Output
from tideflow.engine.ports import LogRecord, RunRecord, Store, TaskRecord, utcnow

#: Seconds between two reads of a watch.
INTERVAL = 0.5


class _Lines:
    """Rows printed one at a time under a header, columns widening as needed."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.widths = [len(c) for c in columns]
        self.header_printed = False

    def print(self, row: Sequence[Any]) -> None:
        cells = ["-" if c is None else _plain(str(c)) for c in row]
        self.widths = [max(w, len(c)) for w, c in zip(self.widths, cells, strict=True)]
        if not self.header_printed:
            self._line(self.columns)
            self.header_printed = True
        self._line(cells)

    def _line(self, cells: Sequence[str]) -> None:
        text = "   ".join(c.ljust(w) for c, w in zip(cells[:-1], self.widths, strict=False))
        console.print(f"{text}   {cells[-1]}".rstrip(), markup=False, highlight=False)


def _plain(text: str) -> str:
    from rich.text import Text

    return Text.from_markup(text).plain


def _emit_object(document: dict[str, Any], fmt: Output) -> None:
    if fmt is Output.JSON:
        console.print(json.dumps(document, default=str), markup=False, highlight=False)
    elif fmt is Output.YAML:
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        console.print(f"---\n{text.rstrip()}", markup=False, highlight=False)
    else:
        console.print(render.object_name(document), markup=False)


def _printer(store: Store, fmt: Output) -> Callable[[RunRecord], None]:
    wide = fmt is Output.WIDE
    lines = _Lines(render.RUN_COLUMNS + (render.RUN_WIDE if wide else []))

    def show(run: RunRecord) -> None:
        if fmt in (Output.TABLE, Output.WIDE):
            tasks = store.list_tasks(run.id) if wide else None
            lines.print(render.run_row(run, utcnow(), wide=wide, tasks=tasks))
        else:
            _emit_object(render.run_document(run, store.list_tasks(run.id)), fmt)

    return show


def _run_key(run: RunRecord) -> tuple[Any, ...]:
    return (run.phase, run.desired_state, run.generation, run.message, run.finished_at)


def watch_runs(store: Store, listing: Callable[[], list[RunRecord]], fmt: Output) -> int:
    """Print the runs ``listing`` returns, then every run that appears or changes."""
    show = _printer(store, fmt)
    seen: dict[int, tuple[Any, ...]] = {}
    while True:
        for run in reversed(listing()):  # oldest first, like a log
            key = _run_key(run)
            if seen.get(run.id) != key:
                seen[run.id] = key
                show(run)
        time.sleep(INTERVAL)


def watch_run(store: Store, run: RunRecord, fmt: Output) -> int:
    """Print ``run`` and each of its changes until it has finished."""
    show = _printer(store, fmt)
    key = _run_key(run)
    show(run)
    while not run.phase.finished:
        time.sleep(INTERVAL)
        run = store.get_run_by_id(run.id)
        if _run_key(run) != key:
            key = _run_key(run)
            show(run)
    return 0


def watch_tasks(store: Store, run: RunRecord, fmt: Output, phase: str | None) -> int:
    """Print the run's tasks, then every task that appears or changes, until the run ends."""
    wide = fmt is Output.WIDE
    lines = _Lines(render.TASK_COLUMNS + (render.TASK_WIDE if wide else []))
    seen: dict[str, tuple[Any, ...]] = {}
    while True:
        for task in store.list_tasks(run.id):
            key = (task.phase, task.attempt)
            if seen.get(task.name) == key or (phase is not None and task.phase.value != phase):
                continue
            seen[task.name] = key
            if fmt in (Output.TABLE, Output.WIDE):
                lines.print(render.task_row(task, wide=wide))
            elif fmt is Output.NAME:
                console.print(f"task/{task.name}", markup=False)
            else:
                _emit_object(render.task_document(task), fmt)
        if run.phase.finished:
            return 0
        time.sleep(INTERVAL)
        run = store.get_run_by_id(run.id)


class LogPrinter:
    """Prints log lines under a ``==> task attempt N <==`` header per attempt."""

    def __init__(self, attempt: int | None = None) -> None:
        self.attempt = attempt
        self.header: tuple[str, int] | None = None

    def print(self, lines: Sequence[LogRecord]) -> int:
        """Print ``lines``; return the id of the last one (0 if none)."""
        last = 0
        for line in lines:
            last = max(last, line.id)
            if self.attempt is not None and line.attempt != self.attempt:
                continue
            current = (line.task, line.attempt)
            if current != self.header:
                self.header = current
                console.print(
                    f"==> {line.task} attempt {line.attempt} <==", style="bold", markup=False
                )
            console.print(line.text.rstrip("\n"), markup=False, highlight=False)
        return last


def follow_logs(
    store: Store, run: RunRecord, task: str | None, printer: LogPrinter, after: int
) -> int:
    """Keep printing new lines until the task (or, without one, the run) has finished."""
    while True:
        finished = _finished(store, run, task)
        after = max(after, printer.print(store.get_logs(run.id, task, after=after)))
        if finished:  # read once more after the end was seen: nothing is left behind
            return 0
        time.sleep(INTERVAL)


def _finished(store: Store, run: RunRecord, task: str | None) -> bool:
    current = store.get_run_by_id(run.id)
    if current.phase.finished or task is None:
        return current.phase.finished
    instances: list[TaskRecord] = [
        t for t in store.list_tasks(run.id) if t.name == task or t.task == task
    ]
    return bool(instances) and all(t.phase.finished for t in instances)
