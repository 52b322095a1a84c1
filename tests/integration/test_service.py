"""The front doors' service layer: one place wires settings, store and engine, and
offers the verbs the command line and the client share."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

import tideflow
from tideflow.cli.session import Session
from tideflow.config import Settings, load_settings
from tideflow.errors import ConflictError, NotFoundError
from tideflow.executors.routing import RoutingExecutor
from tideflow.model import DesiredState, RunPhase, TaskPhase, Workflow
from tideflow.service import Services

T = "tests.integration.tasks"


def flow(name: str = "svc") -> Workflow:
    return Workflow.model_validate(
        {
            "metadata": {"name": name},
            "spec": {
                "params": [{"name": "n", "type": "integer", "default": 2}],
                "tasks": [
                    {"name": "chatty", "function": f"{T}:chatty"},
                    {
                        "name": "sum",
                        "function": f"{T}:add",
                        "args": {"a": "{{ params.n }}", "b": 1},
                    },
                ],
            },
        }
    )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(None, database_url=database_url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = Services.open(settings)  # migrates the empty database (autoMigrate)
    try:
        yield services
    finally:
        services.close()


def test_the_verbs_from_apply_to_delete(services: Services) -> None:
    assert services.apply(flow()) == "created"
    assert services.apply(flow()) == "unchanged"
    assert services.workflow("default", "svc") == flow()
    record = services.submit("default", "svc", {"n": "5"}, name="svc-1")
    assert (record.phase, record.params) == (RunPhase.PENDING, {"n": 5})
    assert services.get("default", "svc-1").id == record.id
    assert [r.name for r in services.runs("default", "svc")] == ["svc-1"]
    assert services.control("default", "svc-1", "pause").desired_state is DesiredState.PAUSED
    with pytest.raises(ConflictError):
        services.delete("default", "svc-1")  # unfinished
    assert services.control("default", "svc-1", "resume").desired_state is DesiredState.RUNNING
    before = (sys.stdout, sys.stderr, list(logging.getLogger().handlers))
    final = services.wait("default", "svc-1")
    assert (sys.stdout, sys.stderr, list(logging.getLogger().handlers)) == before
    assert final.phase is RunPhase.SUCCEEDED
    assert services.status("default", "svc-1").phase is RunPhase.SUCCEEDED
    outputs = {t.name: (t.phase, t.output) for t in services.tasks("default", "svc-1")}
    assert outputs == {"chatty": (TaskPhase.SUCCEEDED, "ok"), "sum": (TaskPhase.SUCCEEDED, 6)}
    lines = "".join(line.text for line in services.logs("default", "svc-1", "chatty"))
    assert "hello from print" in lines and "hello from the task logger" in lines
    services.delete("default", "svc-1")
    with pytest.raises(NotFoundError):
        services.get("default", "svc-1")
    services.delete_workflow("default", "svc")
    with pytest.raises(NotFoundError):
        services.workflow("default", "svc")


def test_a_workflow_object_is_submitted_as_given(services: Services) -> None:
    record = services.submit("ignored", flow("unapplied"), name="u-1")
    assert (record.namespace, record.workflow_name) == ("default", "unapplied")


def test_terminating_an_unowned_run_ends_it_at_once(services: Services) -> None:
    services.apply(flow())
    services.submit("default", "svc", name="svc-2")
    assert services.control("default", "svc-2", "terminate").phase is RunPhase.TERMINATED


def test_each_engine_gets_its_own_routing_executor(services: Services) -> None:
    first, second = services.engine(), services.engine()
    assert isinstance(first.executor, RoutingExecutor)
    assert first.executor is not second.executor
    assert first.store is services.store
    first.executor.close()
    second.executor.close()


def test_the_client_and_the_command_line_use_the_services(database_url: str) -> None:
    with tideflow.connect(database_url, namespace="quant") as client:
        assert isinstance(client.services, Services)
        assert client.store is client.services.store
        assert client.services.settings is client.settings
    root, level = list(logging.getLogger().handlers), logging.getLogger("tideflow").level
    session = Session(database_url=database_url)
    try:
        services = session.services()
        assert session.services() is services  # opened once per command line
        assert session.store() is services.store
    finally:
        session.close()
        # The command line is an entry point: it configured logging. Undo that here.
        for handler in logging.getLogger().handlers:
            if handler not in root:
                logging.getLogger().removeHandler(handler)
        logging.getLogger("tideflow").setLevel(level)
