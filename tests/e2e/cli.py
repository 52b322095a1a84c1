"""Run the ``tideflow`` command line as a user does: a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEFLOW_")}
    if database_url:
        env["TIDEFLOW_DATABASE_URL"] = database_url
    env.update(
        # The test task functions live in this repository's tests package.
        PYTHONPATH=str(ROOT),
        TIDEFLOW_ENGINE__POLL_SECONDS="0.1",
        COLUMNS="200",
    )
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str


def tideflow(*args: str, db: str, cwd: Path, timeout: float = 120, **env: str) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "tideflow", *args],
        cwd=cwd,
        env=cli_env(db, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def spawn(*args: str, db: str, cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start a long-running command; its output goes to a log file in ``cwd``
    (a pipe nobody reads would fill up and block it)."""
    log = cwd / f"{args[0]}-{len(list(cwd.glob(f'{args[0]}-*.log')))}.log"
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tideflow", *args],
            cwd=cwd,
            env=cli_env(db, **env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful shutdown), SIGKILL if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
