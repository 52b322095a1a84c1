"""The collector pause of large workflow steps (``tideflow.model.collection``)."""

from __future__ import annotations

import gc

import pytest
from pydantic import ValidationError

from tideflow.model import Workflow
from tideflow.model.collection import LARGE, paused_collection


def test_a_large_step_pauses_the_collector_and_restores_it_even_on_error() -> None:
    assert gc.isenabled()
    with paused_collection(LARGE - 1):
        assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_collection(LARGE):
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()


def test_a_collector_the_application_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        with paused_collection(LARGE):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_parsing_a_large_invalid_workflow_restores_the_collector() -> None:
    tasks = [{"name": f"t{i}", "function": "m:f"} for i in range(LARGE)]
    tasks.append({"name": "Bad", "function": "m:f"})
    document = {"metadata": {"name": "big"}, "spec": {"tasks": tasks}}
    with pytest.raises(ValidationError) as caught:
        Workflow.model_validate(document)
    assert caught.value.errors()[0]["loc"] == ("spec", "tasks", LARGE, "name")
    assert gc.isenabled()
