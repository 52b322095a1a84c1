"""Crash recovery with real processes: SIGKILL the engine mid-run, start it again.

Every task appends ``name attempt`` to a file, so the file is the ground truth
of what executed. The database, read right after the kill, says which tasks
had Succeeded; those must never run again.
"""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import yaml

from tests.e2e.cli import spawn, stop, tideflow
from tideflow.model import RunPhase, TaskPhase
from tideflow.storage.store import SqlStore

LAYERS, WIDTH = 6, 10  # 60 tasks, plus a final check that gathers outputs
#: Short leases so a restarted engine adopts the dead engine's run quickly.
FAST = {"TIDEFLOW_ENGINE__LEASE_SECONDS": "3", "TIDEFLOW_ENGINE__POLL_SECONDS": "0.1"}


def _manifest(tmp_path: Path, ledger: Path, seconds: float = 0.3, *, per_run: bool = False) -> Path:
    """The workflow; with ``per_run`` the ledger names are ``RUN/TASK`` to tell runs apart."""
    tasks = []
    for layer in range(LAYERS):
        for i in range(WIDTH):
            name = f"l{layer}-t{i}"
            task = {
                "name": name,
                "function": "tests.integration.tasks:append",
                "args": {
                    "path": str(ledger),
                    "seconds": seconds,
                    "name": f"{{{{ run.name }}}}/{name}" if per_run else name,
                },
            }
            if layer:
                task["dependsOn"] = [f"l{layer - 1}-t{j}" for j in range(WIDTH)]
            tasks.append(task)
    last = [f"l{LAYERS - 1}-t{i}" for i in range(WIDTH)]
    tasks.append(
        {
            "name": "check",
            "function": "tests.integration.tasks:echo",
            "dependsOn": last,
            "args": {"value": [f"{{{{ tasks['{name}'].output }}}}" for name in last]},
        }
    )
    document = {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "crashy"},
        "spec": {"tasks": tasks},
    }
    path = tmp_path / "crashy.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _ledger(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(name, int(attempt)) for name, attempt in (line.split() for line in lines if line)]


def _wait(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _finished_run(store: SqlStore) -> bool:
    runs = store.list_runs()
    return bool(runs) and all(r.phase.finished for r in runs)


def test_sigkill_mid_run_loses_nothing_and_reruns_only_what_was_in_flight(
    database_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    manifest = _manifest(tmp_path, ledger, seconds=0.5)  # long enough to kill mid-attempt
    store = SqlStore.from_url(database_url)
    try:
        first = spawn("run", "-f", str(manifest), "--wait", db=database_url, cwd=tmp_path, **FAST)
        # Kill once two layers are done and the third is in flight.
        _wait(lambda: len(_ledger(ledger)) >= 2 * WIDTH + 3)
        first.send_signal(signal.SIGKILL)
        first.wait()
        (run,) = store.list_runs()
        at_kill = {t.name: t.phase for t in store.list_tasks(run.id)}
        succeeded = {n for n, p in at_kill.items() if p is TaskPhase.SUCCEEDED}
        in_flight = {n for n, p in at_kill.items() if p is TaskPhase.RUNNING}
        assert len(succeeded) >= WIDTH and in_flight, at_kill

        second = spawn("server", db=database_url, cwd=tmp_path, **FAST)
        try:
            _wait(lambda: _finished_run(store), timeout=90)
        finally:
            stop(second)

        final = store.get_run_by_id(run.id)
        assert final.phase is RunPhase.SUCCEEDED, final.message
        tasks = {t.name: t for t in store.list_tasks(run.id)}
        executions = collections.Counter(name for name, _ in _ledger(ledger))
        attempts = collections.defaultdict(list)
        for name, attempt in _ledger(ledger):
            attempts[name].append(attempt)
        # What had Succeeded before the kill ran exactly once.
        for name in succeeded:
            assert attempts[name] == [1], (name, attempts[name])
        # What was in flight ran again, as attempt 2, and nothing ran a third time.
        for name in in_flight:
            assert attempts[name][-1] == 2 and tasks[name].attempt == 2, (name, attempts[name])
        assert all(len(set(a)) == len(a) for a in attempts.values())  # no attempt ran twice
        assert set(executions) == {n for n in tasks if n != "check"}
        # Outputs passed downstream survived the crash.
        assert tasks["check"].output == [f"l{LAYERS - 1}-t{i}" for i in range(WIDTH)]
    finally:
        store.close()


def test_two_engines_on_one_database_never_run_an_attempt_twice(
    database_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    manifest = _manifest(tmp_path, ledger, seconds=0.02, per_run=True)
    assert tideflow("apply", "-f", str(manifest), db=database_url, cwd=tmp_path).code == 0
    for _ in range(3):
        result = tideflow("run", "crashy", db=database_url, cwd=tmp_path)
        assert result.code == 0, result.err
    store = SqlStore.from_url(database_url)
    engines = [spawn("server", db=database_url, cwd=tmp_path, **FAST) for _ in range(2)]
    try:
        _wait(lambda: _finished_run(store), timeout=90)
    finally:
        for engine in engines:
            stop(engine)
    try:
        runs = store.list_runs()
        assert [r.phase for r in runs] == [RunPhase.SUCCEEDED] * 3
        # Every task of every run executed exactly once, as attempt 1.
        lines = _ledger(ledger)
        assert len(lines) == 3 * LAYERS * WIDTH
        assert len(set(lines)) == len(lines)  # no (run, task, attempt) twice
        assert {attempt for _, attempt in lines} == {1}
        for run in runs:
            assert all(t.attempt == 1 for t in store.list_tasks(run.id))
    finally:
        store.close()


def test_sigterm_drains_running_tasks_and_hands_the_run_over(
    database_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    manifest = _manifest(tmp_path, ledger, seconds=0.5)
    assert tideflow("run", "-f", str(manifest), db=database_url, cwd=tmp_path).code == 0
    store = SqlStore.from_url(database_url)
    try:
        first = spawn("server", db=database_url, cwd=tmp_path, **FAST)
        _wait(lambda: len(_ledger(ledger)) >= WIDTH + 2)  # the second layer is in flight
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        (run,) = store.list_runs()
        # Running attempts were allowed to finish; nothing is left Running, nobody owns the run.
        assert TaskPhase.RUNNING not in {t.phase for t in store.list_tasks(run.id)}
        assert store.get_run_by_id(run.id).owner is None

        second = spawn("server", db=database_url, cwd=tmp_path, **FAST)
        try:
            _wait(lambda: _finished_run(store), timeout=90)
        finally:
            stop(second)
        assert store.get_run_by_id(run.id).phase is RunPhase.SUCCEEDED
        # Every task ran exactly once: the hand-over re-ran nothing.
        assert sorted(_ledger(ledger)) == sorted(
            (f"l{layer}-t{i}", 1) for layer in range(LAYERS) for i in range(WIDTH)
        )
    finally:
        store.close()
