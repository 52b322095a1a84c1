"""kubectl-grade verbs on stored objects: apply semantics for runs, delete, selectors, formats."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cli import tideflow

T = "tests.integration.tasks"

FLOW = textwrap.dedent(f"""\
    apiVersion: tideflow.dev/v1alpha1
    kind: Workflow
    metadata: {{name: pricing, labels: {{team: data, tier: gold}}}}
    spec:
      params:
        - {{name: n, type: integer, default: 2}}
        - {{name: tag, default: eod}}
      tasks:
        - name: list
          function: {T}:symbols
          args: {{n: "{{{{ params.n }}}}"}}
    """)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'objects.db'}"


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "pricing.yaml"
    path.write_text(FLOW, encoding="utf-8")
    return path


def _run_manifest(path: Path, name: str, **spec: Any) -> Path:
    labels = spec.pop("labels", None)
    document = {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "spec": {"workflowRef": {"name": "pricing"}, **spec},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_a_workflow_run_manifest_is_reconciled_like_a_kubernetes_object(
    tmp_path: Path, db: str, flow: Path
) -> None:
    assert tideflow("apply", "-f", str(flow), db=db, cwd=tmp_path).code == 0
    run = _run_manifest(tmp_path / "run.yaml", "eod-1", params={"n": 3})
    assert tideflow("apply", "-f", str(run), db=db, cwd=tmp_path).out.strip() == (
        "workflowrun.tideflow.dev/eod-1 created"
    )
    assert tideflow("apply", "-f", str(run), db=db, cwd=tmp_path).out.strip() == (
        "workflowrun.tideflow.dev/eod-1 unchanged"
    )
    # The same params spelled as text are the same params once converted.
    _run_manifest(run, "eod-1", params={"n": "3"})
    assert "unchanged" in tideflow("apply", "-f", str(run), db=db, cwd=tmp_path).out

    _run_manifest(run, "eod-1", params={"n": 4})
    changed = tideflow("apply", "-f", str(run), db=db, cwd=tmp_path)
    assert changed.code == 2
    assert "run.yaml: spec.params: is immutable once the run exists; create a new run" in (
        changed.err
    )
    _run_manifest(run, "eod-1", params={"n": 3}, desiredState="Paused")
    paused = tideflow("apply", "-f", str(run), db=db, cwd=tmp_path)
    assert paused.out.strip() == "workflowrun.tideflow.dev/eod-1 configured", paused.err
    document = json.loads(tideflow("get", "run", "eod-1", "-o", "json", db=db, cwd=tmp_path).out)
    assert document["spec"]["desiredState"] == "Paused"
    assert document["spec"]["params"] == {"n": 3, "tag": "eod"}

    other = tmp_path / "other.yaml"
    other.write_text(run.read_text().replace("name: pricing", "name: ghost"), encoding="utf-8")
    refused = tideflow("apply", "-f", str(other), db=db, cwd=tmp_path)
    assert refused.code == 2 and "spec.workflowRef: is immutable" in refused.err

    missing = _run_manifest(tmp_path / "missing.yaml", "eod-2")
    missing.write_text(missing.read_text().replace("name: pricing", "name: ghost"))
    absent = tideflow("apply", "-f", str(missing), db=db, cwd=tmp_path)
    assert absent.code == 2
    assert 'missing.yaml: spec.workflowRef.name: workflow "ghost" not found' in absent.err


def test_a_forbidden_desired_state_is_refused_by_the_state_machine(
    tmp_path: Path, db: str, flow: Path
) -> None:
    assert (
        tideflow("run", "-f", str(flow), "--name", "done-1", "--wait", db=db, cwd=tmp_path).code
        == 0
    )
    run = _run_manifest(tmp_path / "run.yaml", "done-1", desiredState="Paused")
    refused = tideflow("apply", "-f", str(run), db=db, cwd=tmp_path)
    assert refused.code == 2
    assert "cannot pause: the run already finished (Succeeded)" in refused.err


def test_delete_removes_runs_and_workflows_and_refuses_unfinished_runs(
    tmp_path: Path, db: str, flow: Path
) -> None:
    assert (
        tideflow("run", "-f", str(flow), "--name", "d-1", "--wait", db=db, cwd=tmp_path).code == 0
    )
    assert tideflow("run", "pricing", "--name", "d-2", db=db, cwd=tmp_path).code == 0  # Pending

    pending = tideflow("delete", "run", "d-2", db=db, cwd=tmp_path)
    assert pending.code == 2 and 'run "d-2" is Pending' in pending.err and "--force" in pending.err
    # No engine owns d-2: --force terminates it at once, then deletes it.
    forced = tideflow("delete", "run", "d-2", "--force", db=db, cwd=tmp_path)
    assert forced.out.strip() == "workflowrun.tideflow.dev/d-2 deleted", forced.err

    deleted = tideflow("delete", "workflow", "pricing", db=db, cwd=tmp_path)
    assert deleted.out.strip() == "workflow.tideflow.dev/pricing deleted"
    # The run keeps its own snapshot of the workflow.
    run = json.loads(tideflow("get", "run", "d-1", "-o", "json", db=db, cwd=tmp_path).out)
    assert run["status"]["phase"] == "Succeeded"
    assert tideflow("logs", "d-1", db=db, cwd=tmp_path).code == 0

    assert tideflow("delete", "run", "d-1", db=db, cwd=tmp_path).code == 0
    gone = tideflow("get", "run", "d-1", db=db, cwd=tmp_path)
    assert gone.code == 2 and 'run "d-1" not found in namespace default' in gone.err
    again = tideflow("delete", "run", "d-1", db=db, cwd=tmp_path)
    assert again.code == 2 and "not found" in again.err


def test_delete_by_file_removes_what_the_manifests_define(
    tmp_path: Path, db: str, flow: Path
) -> None:
    run = _run_manifest(tmp_path / "run.yaml", "f-1", desiredState="Paused")
    assert tideflow("apply", "-f", str(flow), "-f", str(run), db=db, cwd=tmp_path).code == 0
    refused = tideflow("delete", "-f", str(flow), "-f", str(run), db=db, cwd=tmp_path)
    assert refused.code == 2 and 'run "f-1" is Pending' in refused.err
    result = tideflow("delete", "-f", str(run), "--force", db=db, cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["workflowrun.tideflow.dev/f-1 deleted"]


def test_listings_filter_by_label_phase_namespace_and_limit(
    tmp_path: Path, db: str, flow: Path
) -> None:
    quant = tmp_path / "quant.yaml"
    quant.write_text(FLOW.replace("metadata: {", "metadata: {namespace: quant, "), encoding="utf-8")
    assert tideflow("apply", "-f", str(flow), "-f", str(quant), db=db, cwd=tmp_path).code == 0
    ok = tideflow("run", "pricing", "--name", "ok-1", "--wait", db=db, cwd=tmp_path)
    assert ok.code == 0, ok.err
    tideflow("run", "pricing", "--name", "q-1", "-n", "quant", db=db, cwd=tmp_path)
    labelled = _run_manifest(tmp_path / "r.yaml", "lab-1", labels={"desk": "asia"})
    assert tideflow("apply", "-f", str(labelled), db=db, cwd=tmp_path).code == 0

    def names(*args: str) -> list[str]:
        result = tideflow("get", "runs", "-o", "name", *args, db=db, cwd=tmp_path)
        assert result.code == 0, result.err
        return [line.split("/", 1)[1] for line in result.out.split()]

    assert names() == ["lab-1", "ok-1"]
    before = tideflow("-o", "name", "get", "runs", db=db, cwd=tmp_path)  # -o before the verb
    assert before.out.split() == ["workflowrun.tideflow.dev/lab-1", "workflowrun.tideflow.dev/ok-1"]
    assert names("-A") == ["lab-1", "q-1", "ok-1"]
    assert names("-l", "desk=asia") == ["lab-1"]
    assert names("-l", "team=data,desk!=asia") == ["ok-1"]  # the workflow's labels count
    assert names("-l", "!desk", "-A") == ["q-1", "ok-1"]
    assert names("--phase", "succeeded") == ["ok-1"]
    assert names("--phase", "Pending", "-A") == ["lab-1", "q-1"]
    assert names("--limit", "1", "-A") == ["lab-1"]
    wide = tideflow("get", "runs", "-o", "wide", db=db, cwd=tmp_path).out
    assert "PROGRESS" in wide and "LABELS" in wide and "desk=asia,team=data,tier=gold" in wide
    workflows = tideflow(
        "get", "workflows", "-A", "-l", "tier=gold", "-o", "name", db=db, cwd=tmp_path
    )
    assert workflows.out.split() == ["workflow.tideflow.dev/pricing"] * 2


def test_names_found_in_another_namespace_are_pointed_at(tmp_path: Path, db: str) -> None:
    quant = tmp_path / "quant.yaml"
    quant.write_text(FLOW.replace("metadata: {", "metadata: {namespace: quant, "), encoding="utf-8")
    assert tideflow("apply", "-f", str(quant), db=db, cwd=tmp_path).code == 0
    assert tideflow("run", "pricing", "-n", "quant", "--name", "x-1", db=db, cwd=tmp_path).code == 0
    missing = tideflow("describe", "run", "x-1", db=db, cwd=tmp_path)
    assert missing.code == 2
    assert 'run "x-1" not found in namespace default (found in: quant; use -n quant)' in (
        missing.err
    )
    workflow = tideflow("run", "pricing", db=db, cwd=tmp_path)
    assert workflow.code == 2
    assert 'workflow "pricing" not found in namespace default (found in: quant' in workflow.err


def test_an_empty_listing_says_so_on_stderr(tmp_path: Path, db: str) -> None:
    result = tideflow("get", "runs", db=db, cwd=tmp_path)
    assert (result.code, result.out) == (0, "")
    assert result.err.strip() == "No runs found in namespace default."
    assert tideflow("get", "runs", "-o", "json", db=db, cwd=tmp_path).out.strip() == "[]"
    workflows = tideflow("get", "workflows", "-A", db=db, cwd=tmp_path)
    assert workflows.err.strip() == "No workflows found in any namespace."


def test_parameters_reach_tasks_converted_to_their_declared_types(
    tmp_path: Path, db: str, flow: Path
) -> None:
    (tmp_path / "params.yaml").write_text("n: 4\ntag: from-file\n", encoding="utf-8")
    result = tideflow(
        "run", "-f", str(flow), "-p", "n=3", "--params-file", str(tmp_path / "params.yaml"),
        "--name", "typed-1", "--wait", db=db, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.err
    tasks = json.loads(tideflow("get", "tasks", "typed-1", "-o", "json", db=db, cwd=tmp_path).out)
    assert tasks[0]["output"] == ["S00", "S01", "S02"]  # symbols(n=3): an int, as declared
    run = json.loads(tideflow("get", "run", "typed-1", "-o", "json", db=db, cwd=tmp_path).out)
    assert run["spec"]["params"] == {"n": 3, "tag": "from-file"}  # -p wins over the file

    bad = tideflow("run", "pricing", "-p", "n=three", db=db, cwd=tmp_path)
    assert bad.code == 2
    assert '-p n: "three" is not an integer (parameter "n" has type integer)' in bad.err
    (tmp_path / "broken.json").write_text("{n: ", encoding="utf-8")
    broken = tideflow("run", "pricing", "--params-file", str(tmp_path / "broken.json"), db=db,
                      cwd=tmp_path)  # fmt: skip
    assert broken.code == 2 and "broken.json" in broken.err and "Traceback" not in broken.err


def test_terminate_without_a_server_ends_the_run_at_once_and_says_what_was_cut(
    tmp_path: Path, db: str, flow: Path
) -> None:
    assert tideflow("apply", "-f", str(flow), db=db, cwd=tmp_path).code == 0
    assert tideflow("run", "pricing", "--name", "t-1", db=db, cwd=tmp_path).code == 0
    assert tideflow("terminate", "t-1", db=db, cwd=tmp_path).code == 0
    run = json.loads(tideflow("get", "run", "t-1", "-o", "json", db=db, cwd=tmp_path).out)
    assert run["status"]["phase"] == "Terminated"
    condition = run["status"]["conditions"][0]
    assert condition["reason"] == "Terminated"
    assert condition["message"] == "terminated: 0 of 1 tasks finished, 1 terminated"
    retried = tideflow("retry", "t-1", "--wait", db=db, cwd=tmp_path)
    assert retried.code == 0, retried.err
    assert "run t-1 Succeeded" in retried.out
