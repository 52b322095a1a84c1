"""The manifest models: what a user may write and what is refused."""

import pydantic
import pytest
import yaml

from tideflow.model import Backoff, Workflow, to_document


def _workflow(**spec: object) -> dict[str, object]:
    return {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "daily"},
        "spec": {"tasks": [{"name": "a", "function": "pkg.mod:fn"}], **spec},
    }


def test_yaml_round_trips_through_the_model() -> None:
    doc = _workflow(parallelism=4, retry={"limit": 2, "backoff": {"seconds": 3}})
    first = Workflow.model_validate(doc)
    again = Workflow.model_validate(yaml.safe_load(yaml.safe_dump(to_document(first))))
    assert again == first
    assert to_document(again)["spec"]["retry"] == {"limit": 2, "backoff": {"seconds": 3.0}}


def test_a_task_needs_exactly_one_kind() -> None:
    doc = _workflow()
    doc["spec"]["tasks"] = [{"name": "a", "function": "m:f", "command": ["echo"]}]  # type: ignore[index]
    with pytest.raises(pydantic.ValidationError, match="exactly one of function, command"):
        Workflow.model_validate(doc)


@pytest.mark.parametrize("name", ["Fetch", "fetch_bars", "-a", "a" * 64])
def test_bad_names_are_refused(name: str) -> None:
    doc = _workflow()
    doc["metadata"] = {"name": name}
    with pytest.raises(pydantic.ValidationError, match="name"):
        Workflow.model_validate(doc)


def test_backoff_grows_exponentially_and_is_capped() -> None:
    backoff = Backoff(seconds=2, factor=3, max_seconds=40)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [2, 6, 18, 40]
