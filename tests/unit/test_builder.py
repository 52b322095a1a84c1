"""The fluent Python builder: same model as YAML, same errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import tideflow
from tests.unit import taskfns
from tideflow.definition.builder import WorkflowBuilder
from tideflow.definition.functions import FunctionError
from tideflow.definition.loading import load_path, load_text
from tideflow.errors import TideflowError, ValidationError
from tideflow.model import ParamType, TriggerRule, Workflow

FIXTURES = Path(__file__).parent / "fixtures"


def _design_example() -> Workflow:
    builder: WorkflowBuilder = tideflow.workflow("daily-bars", namespace="quant")
    return (
        builder.label("team", "data")
        .description("Download and clean daily bars after the close")
        .param("trade_date", default="{{ schedule.date }}")
        .param("universe", default="all", description="which symbols")
        .schedule(
            "30 16 * * 1-5",
            timezone="Asia/Shanghai",
            calendar="XSHG",
            concurrency_policy="Forbid",
            catchup_max_runs=5,
        )
        .parallelism(8)
        .timeout(3600)
        .retry(limit=2, backoff_seconds=5, backoff_factor=2, backoff_max_seconds=300)
        .saga()
        .hook(["RunFailed", "RunSucceeded"], "email", {"to": ["ops@example.com"]})
        .task(
            "list-symbols",
            function=taskfns.list_symbols,
            args={"date": "{{ params.trade_date }}"},
        )
        .task("fetch-bars", function="tests.unit.taskfns:fetch_bars")
        .depends_on("list-symbols")
        .for_each("{{ tasks['list-symbols'].output }}")
        .args(symbol="{{ item }}", date="{{ params.trade_date }}")
        .timeout(60)
        .pool("vendor-api")
        .retry(limit=3)
        .compensate(taskfns.takes_anything)
        .task(
            "factors",
            executor="kubernetes",
            container={
                "image": "ghcr.io/acme/factors:1.2",
                "command": ["python", "-m", "factors"],
                "args": ["{{ params.trade_date }}"],
            },
        )
        .depends_on("fetch-bars")
        .trigger_rule(TriggerRule.ALL_SUCCESS)
        .task("report", command=["sh", "-c", "echo done"], depends_on=["factors"])
        .trigger_rule("allDone")
        .hook(["TaskFailed"], "webhook", {"url": "http://alerts.local/hook"})
        .build()
    )


def test_builder_and_yaml_produce_equal_models() -> None:
    from_yaml = load_path(FIXTURES / "daily.yaml")[0][1]
    assert _design_example() == from_yaml


TYPED_PARAMS = """\
apiVersion: tideflow.dev/v1alpha1
kind: Workflow
metadata: {name: typed}
spec:
  params:
    - {name: trade_date, type: date, default: "{{ schedule.date }}"}
    - {name: universe, enum: [csi300, csi500], default: csi300, description: index}
    - {name: top, type: integer, enum: [5, 10], default: 10}
    - {name: symbols, type: array, required: false}
  tasks:
    - {name: a, command: [echo, "{{ params.trade_date }}", "{{ params.top }}"]}
"""


def test_typed_parameters_are_built_like_yaml_declares_them() -> None:
    built = (
        tideflow.workflow("typed")
        .param("trade_date", default="{{ schedule.date }}", type="date")
        .param("universe", default="csi300", enum=("csi300", "csi500"), description="index")
        .param("top", default=10, type=ParamType.INTEGER, enum=[5, 10])
        .param("symbols", type="array", required=False)
        .task("a", command=["echo", "{{ params.trade_date }}", "{{ params.top }}"])
        .build()
    )
    assert built == load_text(TYPED_PARAMS, "typed.yaml")[0]
    assert [p.type for p in built.spec.params] == ["date", "string", "integer", "array"]


def test_build_checks_parameter_types_and_references_like_yaml_does() -> None:
    builder = (
        tideflow.workflow("w").param("n", default=3).task("a", command=["echo", "{{ params.m }}"])
    )
    with pytest.raises(ValidationError) as caught:
        builder.build()
    assert [str(p) for p in caught.value.problems] == [
        'workflow w: spec.params[0].default: 3 is not a string (parameter "n" has type string; '
        "declare type: integer, or quote the value)",
        "workflow w: spec.tasks[0].command[1]: template uses params.m but the workflow declares "
        'no parameter "m"',
    ]


def test_retry_and_timeout_before_any_task_apply_to_the_workflow() -> None:
    wf = (
        tideflow.workflow("w")
        .retry(limit=2, backoff_seconds=5)
        .timeout(600)
        .task("a", command=["true"])
        .retry(limit=3)
        .timeout(60)
        .workflow_retry(limit=1)
        .build()
    )
    assert wf.spec.retry is not None and wf.spec.retry.limit == 1
    assert wf.spec.timeout_seconds == 600
    task = wf.task("a")
    assert task.retry is not None and task.retry.limit == 3
    assert task.timeout_seconds == 60


def test_a_callable_becomes_a_module_qualname_reference() -> None:
    wf = tideflow.workflow("w").task("a", function=taskfns.Vendor.download, args={"symbol": "x"})
    assert wf.build().task("a").function == "tests.unit.taskfns:Vendor.download"


def test_lambdas_are_refused_when_the_task_is_declared() -> None:
    with pytest.raises(FunctionError, match="lambdas cannot be task functions"):
        tideflow.workflow("w").task("a", function=lambda: None)


def test_nested_functions_are_refused_when_the_task_is_declared() -> None:
    def nested() -> None:
        return None

    with pytest.raises(FunctionError, match="defined inside another function"):
        tideflow.workflow("w").task("a", function=nested)


def test_task_level_calls_need_a_task() -> None:
    with pytest.raises(TypeError, match=r"depends_on\(\) applies to a task"):
        tideflow.workflow("w").depends_on("a")


def test_build_reports_every_problem_like_yaml_does() -> None:
    builder = (
        tideflow.workflow("w")
        .task("fetch-bars", command=["true"])
        .task("clean", command=["true"])
        .depends_on("fech-bars")
        .timeout(0)
    )
    with pytest.raises(ValidationError) as caught:
        builder.build()
    assert [str(p) for p in caught.value.problems] == [
        "workflow w: spec.tasks[1].timeoutSeconds: must be greater than 0"
    ]
    builder.timeout(5)
    with pytest.raises(ValidationError) as caught:
        builder.build()
    assert [str(p) for p in caught.value.problems] == [
        'workflow w: spec.tasks[1].dependsOn[0]: unknown task "fech-bars" '
        '(did you mean "fetch-bars"?)'
    ]


def test_build_resolves_functions_unless_told_not_to() -> None:
    builder = tideflow.workflow("w").task("a", function="only_on_workers:f")
    with pytest.raises(ValidationError, match='cannot import module "only_on_workers"'):
        builder.build()
    assert builder.build(resolve_functions=False).task("a").function == "only_on_workers:f"


def test_the_builder_keeps_its_own_copy_of_arguments() -> None:
    args = {"symbol": "x", "date": "d"}
    builder = tideflow.workflow("w").task("a", function=taskfns.fetch_bars, args=args)
    args["symbol"] = "changed"
    assert builder.build().task("a").args == {"symbol": "x", "date": "d"}


def test_validation_errors_are_tideflow_errors() -> None:
    with pytest.raises(TideflowError):
        tideflow.workflow("Bad Name").task("a", command=["true"]).build()
