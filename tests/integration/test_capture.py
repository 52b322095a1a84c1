"""Capturing what attempts print and log, without global side effects.

Creating an executor changes nothing in the process. While attempts run,
``sys.stdout``/``sys.stderr`` are routers and the root logger has one more
handler; when the last attempt ends the process is as it was. No logger level
is ever changed, yet ``context.logger.info`` lands in the attempt's log.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tideflow.engine.context import TaskContext
from tideflow.engine.execution import Attempt, Outcome
from tideflow.executors import capture
from tideflow.executors.local import LocalExecutor
from tideflow.model import TaskSpec

HERE = "tests.integration.test_capture"
#: Lines each concurrent attempt writes, interleaved with the others'.
LINES = 40


# -- task functions (resolved by reference, like any task) ------------------------------


def chatty(context: TaskContext) -> str:
    print("hello from print")
    print("to stderr", file=sys.stderr)
    context.logger.info("hello from the task logger")
    context.logger.debug("a debug line")
    logging.getLogger("some.library").warning("a library warning")
    return "ok"


async def async_chatty(context: TaskContext) -> str:
    print("hello from async print")
    context.logger.info("hello from the async task logger")
    return "ok"


def thread_lines(tag: str) -> str:
    for i in range(LINES):
        print(f"{tag} {i}")
        logging.getLogger("tideflow.task").warning("%s record %d", tag, i)
        time.sleep(0.001)
    return tag


async def async_lines(tag: str) -> str:
    for i in range(LINES):
        print(f"{tag} {i}")
        logging.getLogger("tideflow.task").warning("%s record %d", tag, i)
        await asyncio.sleep(0.001)
    return tag


_release = threading.Event()


def blocked() -> str:
    print("before")
    _release.wait(10)
    print("after the timeout")
    return "late"


# -- helpers ---------------------------------------------------------------------------


def attempt(task: str, function: str, **fields: Any) -> Attempt:
    spec = TaskSpec.model_validate({"name": task.split("[")[0], "function": function, **fields})
    return Attempt(
        run_id=1,
        run_name="r",
        namespace="default",
        workflow="w",
        task=task,
        spec=spec,
        number=1,
        function=function,
        args=fields.pop("args", {}),
        timeout=fields.get("timeoutSeconds"),
    )


def text(outcome: Outcome, stream: str | None = None) -> str:
    return "".join(t for s, t in outcome.logs if stream is None or s == stream)


Snapshot = tuple[Any, Any, list[logging.Handler], int, int, int]


def snapshot() -> Snapshot:
    """What capturing must leave as it found it."""
    return (
        sys.stdout,
        sys.stderr,
        list(logging.getLogger().handlers),
        logging.getLogger().level,
        logging.getLogger("tideflow").level,
        logging.getLogger("tideflow.task").level,
    )


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    before = snapshot()
    executor = LocalExecutor(threads=4)
    assert snapshot() == before, "creating an executor changed the process"
    try:
        yield executor
    finally:
        executor.close()


# -- tests -----------------------------------------------------------------------------


async def test_attempts_leave_streams_handlers_and_levels_as_they_found_them(
    executor: LocalExecutor,
) -> None:
    before = snapshot()
    thread, coroutine, process = await asyncio.gather(
        executor.execute(attempt("thread", f"{HERE}:chatty")),
        executor.execute(attempt("async", f"{HERE}:async_chatty")),
        executor.execute(attempt("process", f"{HERE}:chatty", isolation="process")),
    )
    assert snapshot() == before
    assert capture.active_attempts() == 0
    assert (thread.output, coroutine.output, process.output) == ("ok", "ok", "ok")
    assert text(thread, "stdout") == "hello from print\n"
    assert text(thread, "stderr") == "to stderr\n"
    # The task logger's INFO and DEBUG records are kept though no level allows them...
    assert "INFO tideflow.task: hello from the task logger\n" in text(thread, "log")
    assert "DEBUG tideflow.task: a debug line\n" in text(thread, "log")
    # ...and any other logger's records at the levels the process configured.
    assert "WARNING some.library: a library warning\n" in text(thread, "log")
    assert "hello from async print" in text(coroutine, "stdout")
    assert "INFO tideflow.task: hello from the async task logger" in text(coroutine, "log")
    # A task process is unaffected: its print on its stdout, its records in its log.
    assert "hello from print" in text(process, "stdout")
    assert "hello from the task logger" in text(process, "log")


async def test_concurrent_thread_and_async_attempts_keep_their_lines_apart(
    executor: LocalExecutor,
) -> None:
    before = snapshot()
    tags = ["t0", "t1", "t2", "a0", "a1"]
    outcomes = await asyncio.gather(*(executor.execute(_lines_attempt(tag)) for tag in tags))
    assert snapshot() == before
    for tag, outcome in zip(tags, outcomes, strict=True):
        assert outcome.output == tag
        printed = text(outcome, "stdout").splitlines()
        assert printed == [f"{tag} {i}" for i in range(LINES)]
        records = text(outcome, "log").splitlines()
        assert records == [f"WARNING tideflow.task: {tag} record {i}" for i in range(LINES)]


def _lines_attempt(tag: str) -> Attempt:
    function = f"{HERE}:thread_lines" if tag.startswith("t") else f"{HERE}:async_lines"
    return attempt(tag, function, args={"tag": tag})


async def test_code_outside_attempts_writes_to_the_real_streams_while_they_run(
    executor: LocalExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    running = executor.execute(attempt("thread", f"{HERE}:thread_lines", args={"tag": "in"}))
    task = asyncio.ensure_future(running)
    while capture.active_attempts() == 0:
        await asyncio.sleep(0.001)
    assert isinstance(sys.stdout, capture._Router)  # routed only now
    print("from the engine")
    outcome = await task
    assert "from the engine" in capsys.readouterr().out
    assert "from the engine" not in text(outcome)
    assert not isinstance(sys.stdout, capture._Router)


async def test_task_records_reach_process_handlers_only_at_enabled_levels(
    executor: LocalExecutor,
) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    task_logger = logging.getLogger("tideflow.task")
    handler = Collect(logging.DEBUG)
    task_logger.addHandler(handler)
    level = task_logger.level
    try:
        task_logger.setLevel(logging.WARNING)
        outcome = await executor.execute(attempt("thread", f"{HERE}:chatty"))
        assert "hello from the task logger" in text(outcome, "log")
        assert seen == []  # INFO is not enabled for tideflow.task here
        task_logger.setLevel(logging.INFO)
        outcome = await executor.execute(attempt("thread", f"{HERE}:chatty"))
        assert text(outcome, "log").count("hello from the task logger") == 1  # not twice
        assert [r.getMessage() for r in seen] == ["hello from the task logger"]
        # Marked as task output, so a terminal handler's filter drops it anywhere.
        assert not capture.OutsideAttempts().filter(seen[0])
    finally:
        task_logger.removeHandler(handler)
        task_logger.setLevel(level)


async def test_a_thread_abandoned_on_timeout_stays_captured_until_it_ends(
    executor: LocalExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot()
    _release.clear()
    outcome = await executor.execute(attempt("slow", f"{HERE}:blocked", timeoutSeconds=0.2))
    assert outcome.status == "timed_out"
    assert capture.active_attempts() == 1  # its thread still runs
    _release.set()
    deadline = time.monotonic() + 10
    while capture.active_attempts():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert "after the timeout" not in capsys.readouterr().out
    assert snapshot() == before


def test_streams_replaced_while_attempts_run_are_left_to_their_replacer() -> None:
    """A progress bar that swaps sys.stdout in and out around attempts keeps working."""
    original = sys.stdout
    first = capture.AttemptLog()
    with capture.attempt(first):
        router = sys.stdout
        assert isinstance(router, capture._Router) and router.real is original
        replacement: Any = _Proxy(router)
        sys.stdout = replacement
        with capture.attempt(capture.AttemptLog()):
            assert isinstance(sys.stdout, capture._Router)  # routed again, over the proxy
            assert sys.stdout.real is replacement
        print("inside", file=sys.stdout)
    assert sys.stdout is replacement  # not ours to restore
    sys.stdout = original
    assert first.lines == [("stdout", "inside\n")]


class _Proxy:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        return int(self.inner.write(text))

    def flush(self) -> None:
        self.inner.flush()
