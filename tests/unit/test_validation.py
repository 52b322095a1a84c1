"""Semantic validation of workflows: the problems a user sees, in their exact words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tideflow.errors import Problem, ValidationError
from tideflow.loading import load_path, parse_manifest
from tideflow.model import Workflow
from tideflow.validation import check, check_params, validate_workflow

FIXTURES = Path(__file__).parent / "fixtures"
FN = "tests.unit.taskfns"


def _workflow(*tasks: dict[str, Any], params: list[dict[str, Any]] | None = None) -> Workflow:
    doc = {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "daily"},
        "spec": {"tasks": list(tasks), **({"params": params} if params else {})},
    }
    workflow = parse_manifest(doc)
    assert isinstance(workflow, Workflow)
    return workflow


def _cmd(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "command": ["true"], "dependsOn": list(deps), **fields}


def _messages(workflow: Workflow, **options: Any) -> list[str]:
    return [str(p) for p in validate_workflow(workflow, **options)]


def test_the_design_example_is_valid() -> None:
    check(load_path(FIXTURES / "daily.yaml"))


def test_problems_carry_the_source() -> None:
    [problem] = validate_workflow(_workflow(_cmd("a", "b")), "daily.yaml")
    assert problem == Problem("spec.tasks[0].dependsOn[0]", 'unknown task "b"', "daily.yaml")


def test_duplicate_task_names_point_at_the_first_definition() -> None:
    wf = _workflow(_cmd("fetch"), _cmd("clean"), _cmd("x"), _cmd("clean"))
    assert _messages(wf) == [
        'spec.tasks[3].name: duplicate task name "clean" (first defined at spec.tasks[1])'
    ]


def test_unknown_dependencies_suggest_a_close_name() -> None:
    wf = _workflow(_cmd("fetch-bars"), _cmd("x"), _cmd("clean", "fech-bars"))
    assert _messages(wf) == [
        'spec.tasks[2].dependsOn[0]: unknown task "fech-bars" (did you mean "fetch-bars"?)'
    ]


def test_self_and_repeated_dependencies_are_refused() -> None:
    wf = _workflow(_cmd("a"), _cmd("b", "a", "b", "a"))
    assert _messages(wf) == [
        'spec.tasks[1].dependsOn[1]: task "b" depends on itself',
        'spec.tasks[1].dependsOn[2]: "a" is listed twice',
    ]


def test_a_cycle_is_reported_as_a_path() -> None:
    wf = _workflow(_cmd("a", "b"), _cmd("b", "c"), _cmd("c", "a"))
    assert _messages(wf) == ["spec.tasks: dependency cycle: a -> b -> c -> a"]


def test_template_problems_have_the_path_inside_args() -> None:
    wf = _workflow(_cmd("a"), _cmd("b", args={"symbol": "{{ ''.__class__ }}"}))
    assert _messages(wf) == [
        'spec.tasks[1].args.symbol: template reaches for Python internals ("__class__"); '
        "only params, tasks, item, index, run and schedule are available"
    ]


def test_templates_in_every_field_are_checked() -> None:
    bad = "{{ x.__globals__ }}"
    container = {"image": "img", "command": [bad], "args": [bad], "env": {"A": bad}}
    wf = _workflow(
        _cmd("a", env={"B": bad}, workingDir=bad),
        {"name": "k", "container": container, "executor": "kubernetes"},
        {"name": "c", "command": ["echo", bad]},
        params=[{"name": "p", "default": bad}],
    )
    paths = [p.path for p in validate_workflow(wf) if "Python internals" in p.message]
    assert paths == [
        "spec.params[0].default",
        "spec.tasks[0].env.B",
        "spec.tasks[0].workingDir",
        "spec.tasks[1].container.command[0]",
        "spec.tasks[1].container.args[0]",
        "spec.tasks[1].container.env.A",
        "spec.tasks[2].command[1]",
    ]


def test_a_template_syntax_error_is_reported() -> None:
    wf = _workflow(_cmd("a", args={"x": "{{ params.x }"}))
    [message] = _messages(wf)
    assert message.startswith("spec.tasks[0].args.x: template syntax error: line 1: ")


def test_a_template_must_only_use_upstream_tasks() -> None:
    wf = _workflow(
        _cmd("fetch"),
        _cmd("report"),
        _cmd("x"),
        _cmd("clean", "fetch", args={"x": "{{ tasks['report'].output }}"}),
    )
    assert _messages(wf) == [
        "spec.tasks[3].args.x: template uses tasks['report'] which is not upstream of "
        '"clean"; add it to dependsOn'
    ]


def test_transitive_upstream_tasks_may_be_used() -> None:
    wf = _workflow(_cmd("a"), _cmd("b", "a"), _cmd("c", "b", args={"x": "{{ tasks.a.output }}"}))
    assert _messages(wf) == []


def test_a_template_may_not_use_an_unknown_or_its_own_task() -> None:
    wf = _workflow(
        _cmd("report"),
        _cmd("clean", args={"x": "{{ tasks['reprot'].output }}", "y": "{{ tasks.clean.output }}"}),
    )
    assert _messages(wf) == [
        "spec.tasks[1].args.x: template uses tasks['reprot'] but there is no such task "
        '(did you mean "report"?)',
        "spec.tasks[1].args.y: template uses the output of its own task (tasks['clean'])",
    ]


def test_a_compensation_may_use_its_own_task_output() -> None:
    compensate = {"function": f"{FN}:takes_anything", "args": {"rows": "{{ tasks.a.output }}"}}
    assert _messages(_workflow(_cmd("a", compensate=compensate))) == []


def test_unknown_template_variables_are_refused_with_a_suggestion() -> None:
    wf = _workflow(_cmd("a", args={"d": "{{ parms.trade_date }}"}))
    assert _messages(wf) == [
        'spec.tasks[0].args.d: unknown variable "parms" (did you mean "params"?); '
        "templates can use params, tasks, item, index, run, schedule"
    ]


def test_parameter_defaults_can_only_use_params_run_and_schedule() -> None:
    wf = _workflow(_cmd("a"), params=[{"name": "d", "default": "{{ tasks.a.output }}"}])
    assert _messages(wf) == [
        'spec.params[0].default: unknown variable "tasks"; parameter defaults can use '
        "params, run, schedule"
    ]


def test_item_and_index_need_for_each() -> None:
    wf = _workflow(_cmd("a", args={"s": "{{ item }}", "i": "{{ index }}"}))
    assert _messages(wf) == [
        'spec.tasks[0].args.s: "item" is only defined in tasks with forEach',
        'spec.tasks[0].args.i: "index" is only defined in tasks with forEach',
    ]


def test_item_is_available_in_tasks_with_for_each() -> None:
    wf = _workflow(_cmd("a", forEach=[1, 2], args={"s": "{{ item }}-{{ index }}"}))
    assert _messages(wf) == []


def test_for_each_must_use_upstream_tasks() -> None:
    wf = _workflow(_cmd("list"), _cmd("fetch", forEach="{{ tasks['list'].output }}"))
    assert _messages(wf) == [
        "spec.tasks[1].forEach: template uses tasks['list'] which is not upstream of "
        '"fetch"; add it to dependsOn'
    ]


def test_for_each_may_use_params_or_a_literal_list() -> None:
    wf = _workflow(
        _cmd("a", forEach="{{ params.symbols }}"),
        _cmd("b", forEach=["AAPL", "MSFT"]),
        params=[{"name": "symbols", "default": ["AAPL"]}],
    )
    assert _messages(wf) == []


def test_for_each_must_be_a_list_or_a_template() -> None:
    wf = _workflow(_cmd("a", forEach="AAPL,MSFT"))
    assert _messages(wf) == [
        'spec.tasks[0].forEach: must be a list or a "{{ … }}" template that evaluates to one'
    ]


def test_for_each_cannot_use_its_own_item() -> None:
    wf = _workflow(_cmd("a", forEach="{{ item }}"))
    assert _messages(wf) == ['spec.tasks[0].forEach: "item" cannot be used in forEach itself']


def test_function_references_must_import() -> None:
    wf = _workflow({"name": "a", "function": f"{FN}:fetch_bar", "args": {"symbol": "x"}})
    assert _messages(wf) == [
        f'spec.tasks[0].function: "{FN}" has no attribute "fetch_bar" (did you mean "fetch_bars"?)'
    ]


def test_function_signatures_must_accept_the_args() -> None:
    wf = _workflow({"name": "a", "function": f"{FN}:fetch_bars", "args": {"symbl": "x"}})
    assert _messages(wf) == [
        'spec.tasks[0].args.symbl: fetch_bars() has no parameter "symbl" (did you mean "symbol"?)',
        'spec.tasks[0].args: missing required argument "symbol" of fetch_bars()',
        'spec.tasks[0].args: missing required argument "date" of fetch_bars()',
    ]


def test_compensations_are_resolved_too() -> None:
    compensate = {"function": "no_such_module:undo"}
    [message] = _messages(_workflow(_cmd("a", compensate=compensate)))
    assert message.startswith('spec.tasks[0].compensate.function: cannot import module "no_such')


def test_functions_are_not_resolved_when_asked_not_to() -> None:
    wf = _workflow({"name": "a", "function": "no_such_module:f"})
    assert _messages(wf, resolve_functions=False) == []


def test_kubernetes_tasks_are_never_resolved_locally() -> None:
    wf = _workflow({"name": "a", "function": "only_in_image:f", "executor": "kubernetes"})
    assert _messages(wf) == []


def test_pool_names_follow_kubernetes_rules() -> None:
    wf = _workflow(_cmd("a", pool="Vendor_API"), _cmd("b", pool="vendor-api"))
    assert _messages(wf) == [
        "spec.tasks[0].pool: invalid name 'Vendor_API': use lower-case letters, digits and "
        "'-', starting and ending with a letter or digit"
    ]


def test_duplicate_parameters_are_refused() -> None:
    wf = _workflow(_cmd("a"), params=[{"name": "d"}, {"name": "u"}, {"name": "d"}])
    assert _messages(wf) == [
        'spec.params[2].name: duplicate parameter "d" (first defined at spec.params[0])'
    ]


PARAMS = [{"name": "trade_date"}, {"name": "universe", "default": "{{ run.name }}"}]


def test_check_params_merges_defaults_and_keeps_templates_unrendered() -> None:
    wf = _workflow(_cmd("a"), params=PARAMS)
    assert check_params(wf, {"trade_date": "2026-11-30"}) == {
        "trade_date": "2026-11-30",
        "universe": "{{ run.name }}",
    }


def test_check_params_refuses_unknown_parameters_with_a_suggestion() -> None:
    wf = _workflow(_cmd("a"), params=PARAMS)
    with pytest.raises(ValidationError) as caught:
        check_params(wf, {"tradedate": "2026-11-30"})
    assert [str(p) for p in caught.value.problems] == [
        '-p tradedate: unknown parameter "tradedate" (did you mean "trade_date"?); '
        "known: trade_date, universe",
        'parameter "trade_date" is required',
    ]


def test_check_params_uses_document_paths_when_given_one() -> None:
    wf = _workflow(_cmd("a"))
    with pytest.raises(ValidationError) as caught:
        check_params(wf, {"x": 1}, path="spec.params")
    assert [str(p) for p in caught.value.problems] == [
        'spec.params.x: unknown parameter "x"; known: none'
    ]


def test_check_collects_problems_of_every_manifest(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        (FIXTURES / "daily.yaml").read_text().replace("trade_date: 2026", "tradedate: 2026")
    )
    (tmp_path / "b.yaml").write_text((FIXTURES / "daily.yaml").read_text())
    with pytest.raises(ValidationError) as caught:
        check(load_path(tmp_path))
    assert [(Path(p.source).name, p.path, p.message) for p in caught.value.problems] == [
        (
            "a.yaml[1]",
            "spec.params.tradedate",
            'unknown parameter "tradedate" (did you mean "trade_date"?); '
            "known: trade_date, universe",
        ),
        (
            "b.yaml[0]",
            "metadata.name",
            f'Workflow "quant/daily-bars" is defined twice (also in {tmp_path / "a.yaml"}[0])',
        ),
        (
            "b.yaml[1]",
            "metadata.name",
            'WorkflowRun "quant/daily-bars-2026-11-30" is defined twice '
            f"(also in {tmp_path / 'a.yaml'}[1])",
        ),
    ]


def test_validating_a_ten_thousand_task_chain_reports_nothing_for_a_valid_chain() -> None:
    n = 10_000
    tasks = [
        _cmd(
            f"t{i}", *([f"t{i - 1}"] if i else []), args={"x": "{{ tasks.t0.output }}" if i else 0}
        )
        for i in range(n)
    ]
    assert _messages(_workflow(*tasks)) == []
