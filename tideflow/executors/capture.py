"""Route ``print`` output and log records of a task attempt into that attempt's log.

A context variable marks the attempt a piece of code runs for. Asyncio tasks
and threads started with :func:`contextvars.copy_context` carry it, so
concurrent attempts in one process keep their lines apart. Anything written
outside an attempt goes to the real stream unchanged.

Log records emitted inside an attempt belong to the attempt (they are stored
with its log), not to the terminal: a front door's terminal handler carries
an :class:`OutsideAttempts` filter, so that only the engine's own records
reach the terminal.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from tideflow.engine.execution import Stream

#: Per-attempt cap; a task that prints more keeps the first lines and a marker.
MAX_LOG_CHARS = 1_000_000


class AttemptLog:
    """The lines one attempt wrote, capped at :data:`MAX_LOG_CHARS`."""

    __slots__ = ("_size", "label", "lines")

    def __init__(self, label: str = "") -> None:
        """Args:
        label: What the attempt is, for anything that shows its lines live
            (the task instance's name).
        """
        self.lines: list[tuple[Stream, str]] = []
        self.label = label
        self._size = 0

    def write(self, stream: Stream, text: str) -> None:
        if not text:
            return
        if self._size >= MAX_LOG_CHARS:
            return
        self._size += len(text)
        if self._size >= MAX_LOG_CHARS:
            text = text[: max(0, MAX_LOG_CHARS - (self._size - len(text)))] + "\n[log truncated]\n"
        if self.lines and self.lines[-1][0] == stream and not self.lines[-1][1].endswith("\n"):
            self.lines[-1] = (stream, self.lines[-1][1] + text)
        else:
            self.lines.append((stream, text))


current: contextvars.ContextVar[AttemptLog | None] = contextvars.ContextVar(
    "tideflow_attempt_log", default=None
)


class _Router:
    """Stands in for ``sys.stdout``/``sys.stderr``."""

    def __init__(self, stream: Stream, real: TextIO) -> None:
        self._stream: Stream = stream
        self._real = real

    def write(self, text: str) -> int:
        log = current.get()
        if log is None:
            return self._real.write(text)
        log.write(self._stream, text)
        return len(text)

    def flush(self) -> None:
        if current.get() is None:
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextlib.contextmanager
def outside_attempt() -> Iterator[None]:
    """Write to the real streams even from inside an attempt (to echo its lines live)."""
    token = current.set(None)
    try:
        yield
    finally:
        current.reset(token)


class OutsideAttempts(logging.Filter):
    """Passes only log records emitted outside task attempts.

    Attach it to a handler that prints to the terminal: records that task code
    emits (through ``context.logger``, the ``tideflow.task`` logger, or any
    other logger) go to the attempt's log in the database only. Example::

        handler = logging.StreamHandler()
        handler.addFilter(capture.OutsideAttempts())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return current.get() is None


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log = current.get()
        if log is not None:
            log.write("log", self.format(record) + "\n")


_handler_installed = False
_lock = threading.Lock()


def install() -> None:
    """Route this process's ``sys.stdout``/``sys.stderr`` and log records (idempotent).

    Called whenever an executor is created, so streams replaced since (by a
    test runner, a notebook) are routed again.
    """
    global _handler_installed
    with _lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router("stdout", sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router("stderr", sys.stderr)
        if not _handler_installed:
            handler = _Handler(level=logging.DEBUG)
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(handler)
            # The task logger passes records at INFO even if the root logger is quieter.
            logging.getLogger("tideflow.task").setLevel(logging.DEBUG)
            _handler_installed = True
