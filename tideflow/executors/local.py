"""The local executor: runs attempts on this machine, in four ways.

* async functions run on the engine's event loop, cancelled on timeout;
* sync functions run in a thread (default) — a thread cannot be killed, so on
  timeout the attempt is marked timed out and the thread's eventual result is
  discarded (and the thread does not keep the process alive at exit);
* sync functions with ``isolation: process`` run in a child Python process
  (:mod:`tideflow.executors.child`), killed with its process group on timeout;
* ``command`` tasks run as an argv subprocess (no shell unless the argv asks
  for one), also killed with their process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import queue
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from tideflow.definition.functions import accepts_context, is_async, resolve
from tideflow.engine.context import TaskContext
from tideflow.engine.execution import Attempt, Outcome, Reattachment, Spawn, unavailable
from tideflow.errors import PermanentError, TemporaryError
from tideflow.executors import capture
from tideflow.model import ExecutorKind, Isolation

logger = logging.getLogger(__name__)

#: How long a killed process group gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 3.0
#: Largest command stdout kept as the task's output.
MAX_OUTPUT_CHARS = 1_000_000


def task_env(attempt: Attempt) -> dict[str, str]:
    """Environment of a child process: ours, the task's ``env``, and the attempt's identity."""
    env = dict(os.environ)
    env.update(attempt.env or {})
    env.update(
        TIDEFLOW_RUN=attempt.run_name,
        TIDEFLOW_NAMESPACE=attempt.namespace,
        TIDEFLOW_WORKFLOW=attempt.workflow,
        TIDEFLOW_TASK=attempt.task,
        TIDEFLOW_ATTEMPT=str(attempt.number),
    )
    if attempt.index is not None:
        env["TIDEFLOW_INDEX"] = str(attempt.index)
    return env


def failure(exc: BaseException) -> Outcome:
    """The outcome of an attempt that raised ``exc``."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    outcome = Outcome("failed", error=message)
    if isinstance(exc, PermanentError):
        outcome.retryable = False
    elif isinstance(exc, TemporaryError):
        outcome.retry_delay = exc.delay
    outcome.logs.append(("stderr", "".join(traceback.format_exception(exc))))
    return outcome


#: Values JSON takes as they are (``json.dumps`` accepts every one of them).
_SCALARS = (type(None), str, int, float, bool)


def checked_output(value: Any) -> Outcome:
    """Succeed with ``value`` if it is JSON-serialisable, else fail saying why."""
    if type(value) in _SCALARS:
        return Outcome("succeeded", output=value)
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        return Outcome(
            "failed",
            error=f"the task returned a value that is not JSON-serialisable: {exc}",
            retryable=False,
        )
    return Outcome("succeeded", output=value)


def context_facts(attempt: Attempt) -> dict[str, Any]:
    """The attempt's facts a ``TaskContext`` carries (JSON, so a task process gets them too)."""
    return {
        "run": attempt.run_name,
        "namespace": attempt.namespace,
        "workflow": attempt.workflow,
        "task": attempt.task,
        "attempt": attempt.number,
        "index": attempt.index,
        "item": attempt.item,
        "params": attempt.params,
    }


def make_context(attempt: Attempt, log: capture.AttemptLog | None = None) -> TaskContext:
    """The attempt's context; with ``log``, its ``logger`` stores records there."""
    context = TaskContext(**context_facts(attempt))
    if log is not None:
        context.logger = capture.task_logger(log)
    return context


def task_context(
    fn: Callable[..., Any], attempt: Attempt, log: capture.AttemptLog
) -> TaskContext | None:
    """The attempt's context if ``fn`` takes one; None if not (nothing could use it:
    building its logger would cost more than a no-op task)."""
    return make_context(attempt, log) if accepts_context(fn) else None


def call_args(
    fn: Callable[..., Any], attempt: Attempt, context: TaskContext | None
) -> dict[str, Any]:
    args = dict(attempt.args)
    if context is not None:
        args["context"] = context
    return args


def timeout_outcome(attempt: Attempt, note: str = "") -> Outcome:
    return Outcome("timed_out", error=f"timed out after {attempt.timeout:g}s{note}")


_Work = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]


class DaemonThreads(Executor):
    """Runs calls on up to ``size`` daemon threads, started as needed.

    Unlike ``ThreadPoolExecutor``, whose threads the interpreter waits for at
    exit, a thread still busy when the process exits is abandoned. A task's
    thread cannot be killed; when its attempt has been given up (timed out,
    terminated, or its run handed back to another engine, which runs it
    again), waiting for it would only keep ``tideflow run --wait`` or
    ``tideflow server`` alive after they were told to stop.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            return self.submit(lambda: fn(*args, **kwargs))
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot run a task after the executor was closed")
            self._work.put((future, fn, args))
            if self._idle:
                self._idle -= 1  # a waiting thread takes it
            elif len(self._threads) < self._size:
                name = f"{self._name}-{len(self._threads) + 1}"
                thread = threading.Thread(target=self._serve, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            future, fn, args = work
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del work, future, fn, args  # drop references to the task while idle
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking work; each thread ends once it is idle (``wait`` waits for that)."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        work = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if work is not None:
                        work[0].cancel()
            for _ in self._threads:
                self._work.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()


class LocalExecutor:
    """Runs attempts in this process, its threads, or child processes."""

    def __init__(self, threads: int = 32) -> None:
        # Nothing process-wide happens here: capture routes streams and log
        # records only while attempts run (capture.enter/leave).
        self._threads = DaemonThreads(threads, "tideflow-task")

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def reattach(self, attempt: Attempt) -> Reattachment:
        """Always None: a local attempt (coroutine, thread, child process) dies with
        its engine's process, so the next owner runs it again as a new attempt."""
        return None

    async def execute(self, attempt: Attempt) -> Outcome:
        if attempt.spec.executor is not ExecutorKind.LOCAL:
            return unavailable(attempt.spec.executor, [ExecutorKind.LOCAL])
        if attempt.command is not None:
            return await self._run_command(attempt, attempt.command)
        if attempt.function is None:
            return Outcome("failed", error="the task has nothing to run", retryable=False)
        try:
            fn = resolve(attempt.function)
        except Exception as exc:
            outcome = failure(exc)
            outcome.retryable = False
            return outcome
        if is_async(fn):
            return await self._run_async(fn, attempt)
        if attempt.spec.isolation is Isolation.PROCESS:
            return await self._run_process(attempt)
        return await self._run_thread(fn, attempt)

    async def _run_async(self, fn: Callable[..., Any], attempt: Attempt) -> Outcome:
        log = capture.AttemptLog(attempt.task)
        context = task_context(fn, attempt, log)
        token = capture.enter(log)
        try:
            if attempt.timeout is None:  # no timeout scope to enter and leave
                outcome = checked_output(await fn(**call_args(fn, attempt, context)))
            else:
                async with asyncio.timeout(attempt.timeout):
                    outcome = checked_output(await fn(**call_args(fn, attempt, context)))
        except TimeoutError:
            outcome = timeout_outcome(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = failure(exc)
        finally:
            capture.leave(token)
        return _finish(outcome, log, context)

    async def _run_thread(self, fn: Callable[..., Any], attempt: Attempt) -> Outcome:
        log = capture.AttemptLog(attempt.task)
        context = task_context(fn, attempt, log)

        def call() -> Outcome:
            # Entered in the thread: one abandoned on timeout stays captured until it ends.
            with capture.attempt(log):
                try:
                    return checked_output(fn(**call_args(fn, attempt, context)))
                except Exception as exc:
                    return failure(exc)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._threads, contextvars.copy_context().run, call)
        try:
            outcome = await asyncio.wait_for(future, attempt.timeout)
        except TimeoutError:
            outcome = timeout_outcome(attempt, " (the thread cannot be killed and was abandoned)")
        return _finish(outcome, log, context)

    async def _run_process(self, attempt: Attempt) -> Outcome:
        # The result travels through a file, not a pipe: a large result would fill
        # a pipe's buffer while nobody reads it until the process exits.
        fd, result_path = tempfile.mkstemp(prefix="tideflow-result-", suffix=".json")
        os.close(fd)
        request = {
            "function": attempt.function,
            "args": attempt.args,
            "context": context_facts(attempt),
            "result_path": result_path,
        }
        argv = [sys.executable, "-m", "tideflow.executors.child"]
        try:
            outcome = await self._run_command(attempt, argv, stdin=json.dumps(request).encode())
            with open(result_path, encoding="utf-8") as result_file:
                raw = result_file.read()
        finally:
            os.unlink(result_path)
        if outcome.status == "timed_out" or not raw:
            if outcome.ok:
                outcome = Outcome("failed", error="the task process exited without a result")
            return outcome
        result = json.loads(raw)
        final = Outcome(
            result["status"],
            output=result.get("output"),
            error=result.get("error"),
            retryable=result.get("retryable", True),
            retry_delay=result.get("retry_delay"),
            spawned=[Spawn(s["function"], s["args"]) for s in result.get("spawned", [])],
        )
        final.logs = outcome.logs + [("log", line) for line in result.get("logs", [])]
        return final

    async def _run_command(
        self,
        attempt: Attempt,
        argv: list[str],
        *,
        stdin: bytes | None = None,
    ) -> Outcome:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=task_env(attempt),
                cwd=attempt.working_dir,  # rendered: never a template from the spec
                start_new_session=True,  # its own process group, so children die with it
            )
        except OSError as exc:
            return Outcome("failed", error=f"cannot start {argv[0]!r}: {exc}", retryable=False)
        try:
            async with asyncio.timeout(attempt.timeout):
                out, err = await proc.communicate(stdin)
        except TimeoutError:
            out, err = await _kill(proc)
            outcome = timeout_outcome(attempt)
        except asyncio.CancelledError:
            await asyncio.shield(_kill(proc))
            raise
        else:
            if proc.returncode == 0:
                outcome = checked_output(_command_output(out))
            else:
                last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
                outcome = Outcome(
                    "failed",
                    error=f"command exited with status {proc.returncode}"
                    + (f": {last[0]}" if last[0] else ""),
                )
        outcome.logs = [
            ("stdout", out.decode(errors="replace")),
            ("stderr", err.decode(errors="replace")),
        ]
        outcome.logs = [entry for entry in outcome.logs if entry[1]]
        return outcome


def _command_output(stdout: bytes) -> Any:
    """A command's output: its stdout parsed as JSON if it is JSON, else the text."""
    text = stdout.decode(errors="replace").strip()[:MAX_OUTPUT_CHARS]
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _kill(proc: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    """SIGTERM the process group, SIGKILL it after a grace period; collect what it wrote."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            async with asyncio.timeout(KILL_GRACE_SECONDS):
                return await proc.communicate()
        except TimeoutError:
            continue
    return b"", b""


def _finish(outcome: Outcome, log: capture.AttemptLog, context: TaskContext | None) -> Outcome:
    if log.lines:
        outcome.logs = log.lines + outcome.logs
    if outcome.ok and context is not None:
        outcome.spawned = context.spawned
    return outcome
