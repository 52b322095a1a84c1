"""The command line as a user drives it: manifests, runs, listings, control, exit codes."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.cli import spawn, stop, tideflow
from tideflow.storage.migrating import schema_sql, script_path

T = "tests.integration.tasks"

FLOW = textwrap.dedent(f"""\
    apiVersion: tideflow.dev/v1alpha1
    kind: Workflow
    metadata: {{name: pricing}}
    spec:
      params:
        - {{name: n, type: integer, default: 3}}
        - {{name: tag}}
      tasks:
        - name: list
          function: {T}:symbols
          args: {{n: "{{{{ params.n }}}}"}}
        - name: price
          dependsOn: [list]
          forEach: "{{{{ tasks['list'].output }}}}"
          function: {T}:price
          args: {{symbol: "{{{{ item }}}}"}}
        - name: shout
          dependsOn: [price]
          command: [sh, -c, "echo tagged $0", "{{{{ params.tag }}}}"]
    """)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "pricing.yaml"
    path.write_text(FLOW, encoding="utf-8")
    return path


CLASS = "{{ ''.__class__ }}"  # a template reaching for Python internals


def test_validate_reports_every_problem_with_its_place_and_exits_2(tmp_path: Path, db: str) -> None:
    bad = tmp_path / "daily.yaml"
    bad.write_text(
        textwrap.dedent(f"""\
        apiVersion: tideflow.dev/v1alpha1
        kind: Workflow
        metadata: {{name: daily}}
        spec:
          hooks: [{{on: [RunSucceeded, RunFailedd], plugin: email}}]
          tasks:
            - {{name: fetch-bars, function: {T}:echo, args: {{value: 1}}}}
            - {{name: clean, function: {T}:echo, dependsOn: [fech-bars], args: {{value: 1}}}}
            - {{name: a, function: {T}:echo, dependsOn: [b], args: {{value: "{CLASS}"}}}}
            - {{name: b, function: {T}:echo, dependsOn: [a], args: {{value: 1}}}}
            - {{name: gone, function: {T}:no_such_function}}
        """),
        encoding="utf-8",
    )
    zero = tmp_path / "zero.yaml"
    zero.write_text(
        bad.read_text().replace("args: {value: 1}}", "args: {value: 1}, timeoutSeconds: 0}", 1)
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Workflow\nmetadata:\n  name: x\n spec: {}\n", encoding="utf-8")
    result = tideflow("validate", "-f", str(tmp_path), db=db, cwd=tmp_path)
    assert result.code == 2
    err = result.err
    assert "broken.yaml: line 4, column" in err
    unknown = 'unknown task "fech-bars" (did you mean "fetch-bars"?)'
    assert f"daily.yaml: spec.tasks[1].dependsOn[0]: {unknown}" in err
    assert "zero.yaml: spec.tasks[0].timeoutSeconds: must be greater than 0" in err
    hook = 'spec.hooks[0].on[1]: unknown event "RunFailedd" (did you mean "RunFailed"?)'
    assert f"daily.yaml: {hook}" in err
    assert "dependency cycle: a -> b -> a" in err
    assert "__class__" in err and "Python internals" in err
    assert "no_such_function" in err
    assert "Traceback" not in err


def test_validate_accepts_the_demo_pipeline(tmp_path: Path, db: str) -> None:
    root = Path(__file__).resolve().parents[2]
    result = tideflow("validate", "-f", str(root / "examples"), db=db, cwd=root)
    assert result.code == 0, result.err
    assert "Workflow daily-factors is valid" in result.out


def test_apply_is_idempotent_like_kubectl(tmp_path: Path, db: str, flow: Path) -> None:
    assert tideflow("apply", "-f", str(flow), db=db, cwd=tmp_path).out.strip() == (
        "workflow.tideflow.dev/pricing created"
    )
    assert tideflow("apply", "-f", str(flow), db=db, cwd=tmp_path).out.strip() == (
        "workflow.tideflow.dev/pricing unchanged"
    )
    flow.write_text(FLOW.replace("default: 3", "default: 4"), encoding="utf-8")
    assert tideflow("apply", "-f", str(flow), db=db, cwd=tmp_path).out.strip() == (
        "workflow.tideflow.dev/pricing configured"
    )
    listing = json.loads(tideflow("get", "workflows", "-o", "json", db=db, cwd=tmp_path).out)
    assert [w["metadata"]["name"] for w in listing] == ["pricing"]


def test_run_wait_succeeds_and_the_run_reads_back_as_a_manifest(
    tmp_path: Path, db: str, flow: Path
) -> None:
    result = tideflow(
        "run", "-f", str(flow), "-p", "tag=eod", "--name", "p-1", "--wait", db=db, cwd=tmp_path
    )
    assert result.code == 0, result.err
    assert "run p-1 Succeeded" in result.out

    manifest = yaml.safe_load(tideflow("get", "run", "p-1", "-o", "yaml", db=db, cwd=tmp_path).out)
    assert manifest["apiVersion"] == "tideflow.dev/v1alpha1"
    assert manifest["kind"] == "WorkflowRun"
    assert manifest["spec"]["workflowRef"] == {"name": "pricing"}
    assert manifest["spec"]["params"] == {"n": 3, "tag": "eod"}
    status = manifest["status"]
    assert status["phase"] == "Succeeded"
    assert status["tasks"]["total"] == 5 and status["tasks"]["succeeded"] == 5
    assert status["startedAt"] and status["finishedAt"]
    assert (
        status["conditions"][0]["type"] == "Ready" and status["conditions"][0]["status"] == "True"
    )

    tasks = json.loads(tideflow("get", "tasks", "p-1", "-o", "json", db=db, cwd=tmp_path).out)
    by_name = {t["name"]: t for t in tasks}
    assert set(by_name) == {"list", "price", "price[0]", "price[1]", "price[2]", "shout"}
    for field in ("name", "phase", "attempt", "output", "error", "startedAt", "finishedAt"):
        assert field in by_name["shout"]
    assert by_name["shout"]["output"] == "tagged eod"
    assert by_name["price"]["output"][2] == {"symbol": "S02", "index": 2, "price": 102}

    logs = tideflow("logs", "p-1", "shout", db=db, cwd=tmp_path)
    assert "==> shout attempt 1 <==" in logs.out and "tagged eod" in logs.out
    table = tideflow("get", "runs", db=db, cwd=tmp_path).out
    assert "p-1" in table and "Succeeded" in table


def test_a_failed_run_exits_1_and_says_where_to_look(tmp_path: Path, db: str) -> None:
    path = tmp_path / "fail.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: tideflow.dev/v1alpha1
        kind: Workflow
        metadata: {{name: failing}}
        spec:
          tasks:
            - {{name: boom, function: {T}:boom}}
        """),
        encoding="utf-8",
    )
    result = tideflow("run", "-f", str(path), "--name", "f-1", "--wait", db=db, cwd=tmp_path)
    assert result.code == 1
    assert "run f-1 Failed" in result.out
    assert "boom (attempt 1): RuntimeError: boom" in result.out
    assert "tideflow logs f-1 boom" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "tagg=x"], 'unknown parameter "tagg" (did you mean "tag"?)'),
        ([], 'parameter "tag" is required'),
        (["-p", "novalue"], "expected NAME=VALUE"),
    ],
)
def test_bad_parameters_exit_2(
    tmp_path: Path, db: str, flow: Path, args: list[str], message: str
) -> None:
    result = tideflow("run", "-f", str(flow), *args, db=db, cwd=tmp_path)
    assert result.code == 2
    assert message in result.err


def test_control_from_another_shell_while_a_server_executes(tmp_path: Path, db: str) -> None:
    gate = tmp_path / "gate"
    path = tmp_path / "slow.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: tideflow.dev/v1alpha1
        kind: Workflow
        metadata: {{name: slow}}
        spec:
          tasks:
            - {{name: first, function: {T}:wait_for_file, args: {{path: {gate}}}}}
            - {{name: second, command: [sleep, "60"], dependsOn: [first]}}
        """),
        encoding="utf-8",
    )
    assert tideflow("run", "-f", str(path), "--name", "s-1", db=db, cwd=tmp_path).code == 0
    server = spawn("server", db=db, cwd=tmp_path)
    try:
        _wait_until(lambda: _tasks(db, tmp_path, "s-1")["first"] == "Running")
        assert tideflow("pause", "s-1", db=db, cwd=tmp_path).code == 0
        _wait_for(db, tmp_path, "s-1", "Paused")
        gate.touch()  # first may finish now; second must not start while paused
        _wait_until(lambda: _tasks(db, tmp_path, "s-1")["first"] == "Succeeded")
        time.sleep(0.5)
        assert _tasks(db, tmp_path, "s-1")["second"] == "Pending"
        assert tideflow("resume", "s-1", db=db, cwd=tmp_path).code == 0
        _wait_until(lambda: _tasks(db, tmp_path, "s-1")["second"] == "Running")
        assert tideflow("terminate", "s-1", db=db, cwd=tmp_path).code == 0
        _wait_for(db, tmp_path, "s-1", "Terminated")
        refused = tideflow("resume", "s-1", db=db, cwd=tmp_path)
        assert refused.code == 2
        assert "cannot resume: the run already finished (Terminated)" in refused.err
        assert tideflow("get", "tasks", "s-1", "-o", "json", db=db, cwd=tmp_path).code == 0
    finally:
        stop(server)


def test_unknown_runs_and_bad_settings_are_clear_errors(tmp_path: Path, db: str) -> None:
    missing = tideflow("describe", "run", "nope", db=db, cwd=tmp_path)
    assert missing.code == 2 and 'run "nope" not found' in missing.err
    settings = tideflow("get", "runs", db=db, cwd=tmp_path, TIDEFLOW_ENGINE__SLOTS="0")
    assert settings.code == 2
    assert "engine.slots: must be greater than 0" in settings.err
    dialect = tideflow("db", "schema", "--dialect", "oracle", db=db, cwd=tmp_path)
    assert dialect.code == 2 and "oracle" in dialect.err


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_db_schema_prints_the_ddl(tmp_path: Path, db: str, dialect: str) -> None:
    result = tideflow("db", "schema", "--dialect", dialect, db=db, cwd=tmp_path)
    assert result.code == 0
    assert "CREATE TABLE task_instances" in result.out
    # What a DBA gets from the CLI is what the committed script holds, byte for byte.
    assert result.out == schema_sql(dialect)
    assert script_path(dialect).read_text(encoding="utf-8").endswith(result.out)


def _tasks(db: str, cwd: Path, run: str) -> dict[str, str]:
    out = tideflow("get", "tasks", run, "-o", "json", db=db, cwd=cwd).out
    return {t["name"]: t["phase"] for t in json.loads(out)}


def _wait_until(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _wait_for(db: str, cwd: Path, run: str, phase: str) -> None:
    def reached() -> bool:
        out = tideflow("get", "run", run, "-o", "json", db=db, cwd=cwd).out
        return bool(json.loads(out)["status"]["phase"] == phase)

    _wait_until(reached)


def test_a_workflow_run_manifest_is_applied_like_any_object(
    tmp_path: Path, db: str, flow: Path
) -> None:
    run = tmp_path / "run.yaml"
    document = {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "eod-1"},
        "spec": {
            "workflowRef": {"name": "pricing"},
            "params": {"tag": "eod"},
            "desiredState": "Running",
        },
    }
    run.write_text(yaml.safe_dump(document), encoding="utf-8")
    first = tideflow("apply", "-f", str(flow), "-f", str(run), db=db, cwd=tmp_path)
    assert first.out.splitlines() == [
        "workflow.tideflow.dev/pricing created",
        "workflowrun.tideflow.dev/eod-1 created",
    ]
    assert tideflow("apply", "-f", str(run), db=db, cwd=tmp_path).out.strip() == (
        "workflowrun.tideflow.dev/eod-1 unchanged"
    )
    document["spec"]["desiredState"] = "Paused"  # type: ignore[index]
    run.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert tideflow("apply", "-f", str(run), db=db, cwd=tmp_path).out.strip() == (
        "workflowrun.tideflow.dev/eod-1 configured"
    )
    manifest = yaml.safe_load(
        tideflow("get", "run", "eod-1", "-o", "yaml", db=db, cwd=tmp_path).out
    )
    assert manifest["spec"]["desiredState"] == "Paused"
    assert manifest["spec"]["params"] == {"n": 3, "tag": "eod"}


def test_the_database_comes_from_the_flag_the_environment_or_the_file(tmp_path: Path) -> None:
    flag_db, file_db = tmp_path / "flag.db", tmp_path / "file.db"
    result = tideflow("--db", f"sqlite:///{flag_db}", "db", "upgrade", db="", cwd=tmp_path)
    assert result.code == 0 and flag_db.exists()
    assert "is at the latest schema" in result.out
    (tmp_path / "tideflow.yaml").write_text(f"database: {{url: 'sqlite:///{file_db}'}}\n")
    assert tideflow("get", "runs", db="", cwd=tmp_path).code == 0
    assert file_db.exists()


def test_run_wait_cooperates_with_a_server_on_the_same_database(
    tmp_path: Path, db: str, flow: Path
) -> None:
    server = spawn("server", db=db, cwd=tmp_path)
    try:
        for i in range(3):
            result = tideflow(
                "run",
                "-f",
                str(flow),
                "-p",
                "tag=x",
                "--name",
                f"c-{i}",
                "--wait",
                db=db,
                cwd=tmp_path,
            )
            assert result.code == 0, result.err
            assert f"run c-{i} Succeeded" in result.out
            tasks = json.loads(
                tideflow("get", "tasks", f"c-{i}", "-o", "json", db=db, cwd=tmp_path).out
            )
            # Whichever engine executed it, every task ran once.
            assert {t["attempt"] for t in tasks} == {1}
    finally:
        stop(server)
