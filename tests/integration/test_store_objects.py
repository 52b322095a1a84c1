"""Store verbs behind ``delete``, ``get -l/--phase/-A`` and the "found in" hint.

Every test runs on ``MemoryStore`` and on ``SqlStore`` with SQLite, PostgreSQL
and MariaDB (see ``any_store`` in ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tideflow.engine import control
from tideflow.engine.ports import Batch, LogRecord, RunUpdate, Store
from tideflow.errors import NotFoundError
from tideflow.model import RunPhase, Workflow
from tideflow.model.labels import LabelSelector

if TYPE_CHECKING:
    from tests.conftest import MakeRun

T0 = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
MakeWorkflow = Callable[..., Workflow]


@pytest.fixture
def store(any_store: Store) -> Store:
    """These tests are about the ``Store`` contract: they run on ``MemoryStore`` too."""
    return any_store


def test_a_name_in_another_namespace_is_named_in_the_error(
    store: Store, make_workflow: MakeWorkflow, make_run: MakeRun
) -> None:
    store.apply_workflow(make_workflow(namespace="quant"))
    store.apply_workflow(make_workflow(namespace="risk"))
    make_run("nightly", "quant")
    with pytest.raises(NotFoundError) as run_error:
        store.get_run("default", "nightly")
    assert str(run_error.value) == (
        'run "nightly" not found in namespace default (found in: quant; use -n quant)'
    )
    with pytest.raises(NotFoundError) as workflow_error:
        store.get_workflow("default", "daily-bars")
    assert str(workflow_error.value) == (
        'workflow "daily-bars" not found in namespace default (found in: quant, risk; use -n quant)'
    )


def test_deleting_a_run_removes_its_tasks_logs_and_pool_holdings(
    store: Store, make_run: MakeRun
) -> None:
    run = make_run("doomed")
    keep = make_run("kept")
    owner, until = "engine-a", T0 + timedelta(seconds=30)
    for record in (run, keep):
        assert store.claim_run(record.id, owner, T0, until) is not None
        store.commit(
            Batch(
                owner,
                until,
                run_updates=[RunUpdate(record.id, RunPhase.FAILED, finished_at=T0)],
                logs=[LogRecord(record.id, "list-symbols", 1, "stdout", "hello", T0)],
            )
        )
    store.set_pool_capacity("vendor", 2)
    store.acquire_slots(owner, "vendor", [(run.id, "list-symbols")], T0)

    store.delete_run("default", "doomed")

    with pytest.raises(NotFoundError):
        store.get_run("default", "doomed")
    assert store.list_tasks(run.id) == []
    assert store.get_logs(run.id) == []
    # The pool slot went with it: the other run can take both slots.
    granted = store.acquire_slots(owner, "vendor", [(keep.id, "a"), (keep.id, "b")], T0)
    assert len(granted) == 2
    assert [t.name for t in store.list_tasks(keep.id)] == ["list-symbols", "fetch-bars"]
    assert [line.text for line in store.get_logs(keep.id)] == ["hello"]
    with pytest.raises(NotFoundError, match='run "doomed" not found'):
        store.delete_run("default", "doomed")


def test_deleting_a_workflow_leaves_its_runs(
    store: Store, make_workflow: MakeWorkflow, make_run: MakeRun
) -> None:
    store.apply_workflow(make_workflow())
    make_run("r1")
    store.delete_workflow("default", "daily-bars")
    assert store.list_workflows() == []
    assert store.get_run("default", "r1").workflow.metadata.name == "daily-bars"
    with pytest.raises(NotFoundError):
        store.delete_workflow("default", "daily-bars")


def test_runs_are_listed_by_phase_and_by_labels_of_the_workflow_and_the_run(
    store: Store, make_workflow: MakeWorkflow
) -> None:
    labelled = make_workflow().model_copy(
        update={"metadata": make_workflow().metadata.model_copy(update={"labels": {"team": "d"}})}
    )
    plain = make_workflow(name="plain", namespace="quant")
    for i in range(3):
        control.submit_run(store, labelled, name=f"team-{i}", labels={"n": str(i)}, now=T0)
    control.submit_run(store, plain, name="plain-0", now=T0)
    run = store.get_run("default", "team-1")
    assert run.own_labels == {"n": "1"} and run.labels == {"team": "d", "n": "1"}
    assert store.claim_run(run.id, "e", T0, T0 + timedelta(seconds=30)) is not None
    store.commit(
        Batch("e", T0 + timedelta(seconds=30), run_updates=[RunUpdate(run.id, RunPhase.RUNNING)])
    )

    def names(**kwargs: object) -> list[str]:
        return [r.name for r in store.list_runs(**kwargs)]  # type: ignore[arg-type]

    assert names() == ["plain-0", "team-2", "team-1", "team-0"]
    assert names(phases=[RunPhase.RUNNING]) == ["team-1"]
    assert names(phases=[RunPhase.PENDING], namespace="default") == ["team-2", "team-0"]
    assert names(selector=LabelSelector.parse("team=d,n!=2")) == ["team-1", "team-0"]
    assert names(selector=LabelSelector.parse("!team")) == ["plain-0"]
    assert names(selector=LabelSelector.parse("n in (0,2)"), limit=1) == ["team-2"]
    workflows = store.list_workflows(selector=LabelSelector.parse("team"))
    assert [w.name for w in workflows] == []  # applying is what stores a workflow
    store.apply_workflow(labelled)
    store.apply_workflow(plain)
    assert [w.name for w in store.list_workflows(selector=LabelSelector.parse("team"))] == [
        "daily-bars"
    ]


def test_a_label_selector_pages_through_many_runs(
    store: Store, make_workflow: MakeWorkflow
) -> None:
    flow = make_workflow()
    for i in range(7):
        control.submit_run(store, flow, name=f"r-{i}", labels={"odd": str(i % 2)}, now=T0)
    import tideflow.storage.store as store_module

    original = store_module.CHUNK
    store_module.CHUNK = 2  # pages of two rows: the selector must read on past the first
    try:
        found = store.list_runs(selector=LabelSelector.parse("odd=1"), limit=10)
    finally:
        store_module.CHUNK = original
    assert [r.name for r in found] == ["r-5", "r-3", "r-1"]
