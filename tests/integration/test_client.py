"""The Python front door: build a workflow in code, run it, control it."""

from __future__ import annotations

from pathlib import Path

import tideflow
from tideflow.model import RunPhase, TaskPhase

T = "tests.integration.tasks"


def test_a_built_workflow_runs_to_the_end_from_python(database_url: str) -> None:
    flow = (
        tideflow.workflow("from-python")
        .param("n", default=3, type="integer")
        .task("list", function=f"{T}:symbols", args={"n": "{{ params.n }}"})
        .task("price", function=f"{T}:price", args={"symbol": "{{ item }}"})
        .depends_on("list")
        .for_each("{{ tasks['list'].output }}")
        .build()
    )
    with tideflow.connect(database_url) as tf:
        run = tf.run(flow, {"n": 2}, name="py-1", wait=True)
        assert run.phase is RunPhase.SUCCEEDED
        outputs = {t.name: t.output for t in tf.tasks("py-1")}
        assert outputs["price"] == [
            {"symbol": "S00", "index": 0, "price": 100},
            {"symbol": "S01", "index": 1, "price": 101},
        ]
        assert [r.name for r in tf.runs("from-python")] == ["py-1"]


def test_retry_from_python_reruns_the_failed_task(database_url: str, tmp_path: Path) -> None:
    marker = tmp_path / "fixed"
    flow = (
        tideflow.workflow("fragile")
        .task("fragile", function=f"{T}:fail_once_per_file", args={"marker": str(marker)})
        .build()
    )
    with tideflow.connect(database_url) as tf:
        assert tf.run(flow, name="fr-1", wait=True).phase is RunPhase.FAILED
        marker.write_text("ok")
        assert tf.retry("fr-1", wait=True).phase is RunPhase.SUCCEEDED
        (task,) = tf.tasks("fr-1")
        assert (task.phase, task.attempt, task.output) == (TaskPhase.SUCCEEDED, 2, "fixed")
        assert any("input not there yet" in line.text for line in tf.logs("fr-1", "fragile"))
