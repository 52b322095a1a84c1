"""Route ``print`` output and log records of a task attempt into that attempt's log.

A context variable marks the attempt a piece of code runs for. Asyncio tasks
and threads started with :func:`contextvars.copy_context` carry it, so
concurrent attempts in one process keep their lines apart. Anything written
outside an attempt goes to the real stream unchanged.

No global side effects outside attempts. Importing this module or creating
an executor changes nothing in the process; :func:`attempt` wraps the code
of one attempt, and only while at least one attempt runs (a reference
count) does this process have

* ``sys.stdout``/``sys.stderr`` replaced by routers: ``print()`` in a thread
  task can only be caught there. A router passes everything written outside
  an attempt to the stream it replaced; when the last attempt ends the
  original streams are put back (unless something replaced the router
  since: then it is left, still passing through, until the next attempt);
* one handler on the root logger, which stores records emitted inside an
  attempt (by any logger, at the levels the process configured) with it.

Logger levels are never changed. ``TaskContext.logger`` is a per-attempt
logger (:func:`task_logger`) that writes its records, from DEBUG up, into
its attempt's log directly, and passes them on to the ``tideflow.task``
logger's handlers only at the levels the process enables there.

Log records emitted inside an attempt belong to the attempt (they are stored
with its log), not to the terminal: a front door's terminal handler carries
an :class:`OutsideAttempts` filter, so that only the engine's own records
reach the terminal. Configuring handlers and levels is for entry points (the
command line, a task process), not for this module.
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
        self.real = real

    def write(self, text: str) -> int:
        log = current.get()
        if log is None:
            return self.real.write(text)
        log.write(self._stream, text)
        return len(text)

    def flush(self) -> None:
        if current.get() is None:
            self.real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@contextlib.contextmanager
def outside_attempt() -> Iterator[None]:
    """Write to the real streams even from inside an attempt (to echo its lines live)."""
    token = current.set(None)
    try:
        yield
    finally:
        current.reset(token)


#: Set on a log record a task logger already stored with its attempt.
CAPTURED = "tideflow_captured"
#: How records are written into an attempt's log.
FORMAT = "%(levelname)s %(name)s: %(message)s"
#: The logger task records are named after, and passed on to.
TASK_LOGGER = "tideflow.task"


def inside_attempt(record: logging.LogRecord) -> bool:
    """Whether ``record`` was emitted by task code (in an attempt, or by its task logger)."""
    return current.get() is not None or getattr(record, CAPTURED, False)


class OutsideAttempts(logging.Filter):
    """Passes only log records emitted outside task attempts.

    Attach it to a handler that prints to the terminal: records that task code
    emits (through ``context.logger``, the ``tideflow.task`` logger, or any
    other logger) go to the attempt's log in the database only. Example::

        handler = logging.StreamHandler()
        handler.addFilter(capture.OutsideAttempts())
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not inside_attempt(record)


class _Handler(logging.Handler):
    """On the root logger while attempts run: stores records emitted inside one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        log = current.get()
        if log is not None and not getattr(record, CAPTURED, False):
            log.write("log", self.format(record) + "\n")


class _Sink(logging.Handler):
    """Writes every record into one attempt's log."""

    def __init__(self, log: AttemptLog) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(FORMAT))
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        self._log.write("log", self.format(record) + "\n")


class _TaskLogger(logging.Logger):
    """``TaskContext.logger`` of one attempt: every record goes into the attempt's log.

    It is not registered with :mod:`logging` (``getLogger`` never returns it),
    so it changes no level anywhere. A record is then handled by the
    ``tideflow.task`` logger (its handlers and its ancestors') only if the
    process enables its level there, as if the task had used that logger.
    """

    def __init__(self, log: AttemptLog) -> None:
        super().__init__(TASK_LOGGER, logging.DEBUG)
        self.parent = logging.getLogger(TASK_LOGGER)
        self._sink = _Sink(log)

    def callHandlers(self, record: logging.LogRecord) -> None:
        self._sink.handle(record)
        setattr(record, CAPTURED, True)
        shared = self.parent
        if shared is not None and shared.isEnabledFor(record.levelno):
            shared.handle(record)


def task_logger(log: AttemptLog) -> logging.Logger:
    """A logger named ``tideflow.task`` whose records (DEBUG and up) are stored in ``log``."""
    return _TaskLogger(log)


class _Routing:
    """Streams and root handler, installed while at least one attempt runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._handler = _Handler()

    def acquire(self) -> None:
        with self._lock:
            self._active += 1
            # Checked at every start: streams replaced since (by a progress bar, a
            # test runner) are routed again, passing through to the replacement.
            if not isinstance(sys.stdout, _Router):
                sys.stdout = _Router("stdout", sys.stdout)
            if not isinstance(sys.stderr, _Router):
                sys.stderr = _Router("stderr", sys.stderr)
            root = logging.getLogger()
            if self._handler not in root.handlers:
                root.addHandler(self._handler)

    def release(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active:
                return
            if isinstance(sys.stdout, _Router):
                sys.stdout = sys.stdout.real
            if isinstance(sys.stderr, _Router):
                sys.stderr = sys.stderr.real
            logging.getLogger().removeHandler(self._handler)

    @property
    def active(self) -> int:
        """How many attempts run (for tests)."""
        return self._active


#: The one process-wide piece: streams and the root logger are process-wide.
_routing = _Routing()


def enter(log: AttemptLog) -> contextvars.Token[AttemptLog | None]:
    """Start an attempt in the current context (thread or asyncio task): what it
    prints and logs goes to ``log`` until :func:`leave` with the returned token."""
    token = current.set(log)
    _routing.acquire()
    return token


def leave(token: contextvars.Token[AttemptLog | None]) -> None:
    """End the attempt :func:`enter` started (in the same context)."""
    _routing.release()
    current.reset(token)


@contextlib.contextmanager
def attempt(log: AttemptLog) -> Iterator[AttemptLog]:
    """Run the enclosed code as an attempt whose output and log records go to ``log``.

    Enter it in the thread or asyncio task that runs the attempt's code (a
    thread's code enters it itself, so a thread abandoned on timeout keeps
    its lines off the terminal until it ends).
    """
    token = enter(log)
    try:
        yield log
    finally:
        leave(token)


def active_attempts() -> int:
    """How many attempts run in this process now."""
    return _routing.active
