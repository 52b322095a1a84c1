"""The routing executor, and the one list of templated fields validation and the engine share."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.engine.execution import Attempt, Outcome, Reattachment
from tideflow.executors.local import LocalExecutor
from tideflow.executors.routing import RoutingExecutor, engine_executor
from tideflow.model import ExecutorKind, TaskSpec
from tideflow.model.templated import may_have_templates, task_templates


class Fake:
    def __init__(self, name: str, reattach: Reattachment = None) -> None:
        self.name = name
        self.executed: list[str] = []
        self.closed = 0
        self._reattach = reattach

    async def execute(self, attempt: Attempt) -> Outcome:
        self.executed.append(attempt.task)
        return Outcome("succeeded", output=self.name)

    async def reattach(self, attempt: Attempt) -> Reattachment:
        return self._reattach

    def close(self) -> None:
        self.closed += 1


def _attempt(**task: Any) -> Attempt:
    spec = TaskSpec.model_validate({"name": "t", **task})
    return Attempt(1, "run-1", "default", "flow", "t", spec, 1)


LOCAL_TASK = {"command": ["true"]}
KUBE_TASK = {"executor": "kubernetes", "container": {"image": "busybox"}}


async def test_each_attempt_goes_to_the_executor_of_its_kind() -> None:
    local, kube = Fake("local"), Fake("kubernetes", reattach=Outcome("succeeded"))
    router = RoutingExecutor({ExecutorKind.LOCAL: local, ExecutorKind.KUBERNETES: kube})
    assert (await router.execute(_attempt(**LOCAL_TASK))).output == "local"
    assert (await router.execute(_attempt(**KUBE_TASK))).output == "kubernetes"
    assert await router.reattach(_attempt(**LOCAL_TASK)) is None
    assert await router.reattach(_attempt(**KUBE_TASK)) == Outcome("succeeded")
    assert router.kinds == {ExecutorKind.LOCAL, ExecutorKind.KUBERNETES}


async def test_a_kind_with_no_executor_fails_clearly_and_is_never_reattached() -> None:
    router = RoutingExecutor({ExecutorKind.LOCAL: Fake("local")})
    outcome = await router.execute(_attempt(**KUBE_TASK))
    assert outcome == Outcome(
        "failed",
        error="executor 'kubernetes' is not available in this engine; only local tasks run here",
        retryable=False,
    )
    assert await router.reattach(_attempt(**KUBE_TASK)) is None


async def test_the_local_executor_never_reattaches() -> None:
    executor = LocalExecutor(threads=1)
    try:
        assert await executor.reattach(_attempt(**LOCAL_TASK)) is None
    finally:
        executor.close()


def test_close_closes_each_executor_once() -> None:
    shared, other = Fake("shared"), Fake("other")
    RoutingExecutor({ExecutorKind.LOCAL: shared, ExecutorKind.KUBERNETES: shared}).close()
    RoutingExecutor({ExecutorKind.LOCAL: other}).close()
    assert (shared.closed, other.closed) == (1, 1)


def test_front_doors_get_a_router_with_only_the_local_executor() -> None:
    router = engine_executor(threads=1)
    try:
        assert router.kinds == {ExecutorKind.LOCAL}
    finally:
        router.close()


def test_templated_fields_are_the_body_fields_in_manifest_spelling() -> None:
    container = TaskSpec.model_validate(
        {
            "name": "t",
            "executor": "kubernetes",
            "workingDir": "/w",
            "container": {"image": "busybox", "args": ["{{ params.a }}"]},
        }
    )
    assert dict(task_templates(container)) == {
        "args": None,
        "command": None,
        "env": None,
        "workingDir": "/w",
        "container.command": None,
        "container.args": ["{{ params.a }}"],
        "container.env": None,
    }
    command = TaskSpec.model_validate({"name": "t", "command": ["ls"], "env": {"A": "b"}})
    assert [path for path, _ in task_templates(command)] == [
        "args",
        "command",
        "env",
        "workingDir",
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"function": "m:f"},
        {"function": "m:f", "args": {"a": 1}},
        {"command": ["ls"]},
        {"function": "m:f", "env": {"A": "b"}},
        {"function": "m:f", "workingDir": "/w"},
        {"executor": "kubernetes", "container": {"image": "busybox"}},
    ],
)
def test_may_have_templates_is_false_only_when_no_templated_field_is_set(
    fields: dict[str, Any],
) -> None:
    task = TaskSpec.model_validate({"name": "t", **fields})
    if not may_have_templates(task):
        assert all(value is None for _, value in task_templates(task))
    assert may_have_templates(task) is (fields != {"function": "m:f"})
