"""The local executor: runs attempts on this machine, in four ways.

* async functions run on the engine's event loop, cancelled on timeout;
* sync functions run in a thread (default) — a thread cannot be killed, so on
  timeout the attempt is marked timed out and the thread's eventual result is
  discarded;
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
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tideflow.engine.context import TaskContext
from tideflow.engine.execution import Attempt, Outcome, Spawn
from tideflow.errors import PermanentError, TemporaryError
from tideflow.executors import capture
from tideflow.functions import accepts_context, is_async, resolve
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


def checked_output(value: Any) -> Outcome:
    """Succeed with ``value`` if it is JSON-serialisable, else fail saying why."""
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


def make_context(attempt: Attempt) -> TaskContext:
    return TaskContext(**context_facts(attempt))


def call_args(fn: Callable[..., Any], attempt: Attempt, context: TaskContext) -> dict[str, Any]:
    args = dict(attempt.args)
    if accepts_context(fn):
        args["context"] = context
    return args


def timeout_outcome(attempt: Attempt, note: str = "") -> Outcome:
    return Outcome("timed_out", error=f"timed out after {attempt.timeout:g}s{note}")


class LocalExecutor:
    """Runs attempts in this process, its threads, or child processes."""

    def __init__(self, threads: int = 32) -> None:
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="tideflow-task")
        capture.install()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def execute(self, attempt: Attempt) -> Outcome:
        if attempt.spec.executor is not ExecutorKind.LOCAL:
            return Outcome(
                "failed",
                error=f"executor {attempt.spec.executor.value!r} is not available in this engine; "
                "only local tasks run here",
                retryable=False,
            )
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
        log = capture.AttemptLog()
        token = capture.current.set(log)
        context = make_context(attempt)
        try:
            async with asyncio.timeout(attempt.timeout):
                outcome = checked_output(await fn(**call_args(fn, attempt, context)))
        except TimeoutError:
            outcome = timeout_outcome(attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = failure(exc)
        finally:
            capture.current.reset(token)
        return _finish(outcome, log, context.spawned)

    async def _run_thread(self, fn: Callable[..., Any], attempt: Attempt) -> Outcome:
        log = capture.AttemptLog()
        context = make_context(attempt)

        def call() -> Outcome:
            capture.current.set(log)
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
        return _finish(outcome, log, context.spawned)

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
                cwd=attempt.spec.working_dir,
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


def _finish(outcome: Outcome, log: capture.AttemptLog, spawned: list[Spawn]) -> Outcome:
    outcome.logs = log.lines + outcome.logs
    if outcome.ok:
        outcome.spawned = spawned
    return outcome
