"""Semantic validation of workflows: the problems a user sees, in their exact words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tideflow.definition.loading import load_path, parse_manifest
from tideflow.definition.validation import check, check_params, validate_workflow
from tideflow.errors import Problem, ValidationError
from tideflow.model import EVENT_NAMES, Workflow

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


def test_parameter_defaults_can_only_use_run_and_schedule() -> None:
    # Defaults are rendered before any parameter has a value: params would always fail.
    wf = _workflow(
        _cmd("a"),
        params=[
            {"name": "d", "default": "{{ tasks.a.output }}"},
            {"name": "e", "default": "{{ params.d }}"},
            {"name": "f", "default": "{{ schedule.date }}-{{ run.name }}"},
        ],
    )
    assert _messages(wf) == [
        'spec.params[0].default: unknown variable "tasks"; parameter defaults can use '
        "run, schedule",
        'spec.params[1].default: unknown variable "params"; parameter defaults can use '
        "run, schedule",
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
        params=[{"name": "symbols", "type": "array", "default": ["AAPL"]}],
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


# --------------------------------------------------------------------------- typed parameters


def test_defaults_must_fit_the_declared_type() -> None:
    wf = _workflow(
        _cmd("a"),
        params=[
            {"name": "universe_size", "default": 60},
            {"name": "day", "type": "date", "default": "2026-02-30"},
            {"name": "at", "type": "datetime", "default": "2026-11-30T09:30:00"},
            {"name": "symbols", "type": "array", "default": "600519.SH"},
            {"name": "ok", "type": "integer", "default": 60},
            {"name": "later", "type": "date", "default": "{{ schedule.date }}"},
            {"name": "none", "type": "integer", "default": None},
        ],
    )
    assert _messages(wf) == [
        'spec.params[0].default: 60 is not a string (parameter "universe_size" has type string; '
        "declare type: integer, or quote the value)",
        'spec.params[1].default: "2026-02-30" is not a date: day is out of range for month '
        '(parameter "day" has type date)',
        'spec.params[2].default: "2026-11-30T09:30:00" is not a date-time: it has no UTC offset '
        '(parameter "at" has type datetime; add Z or an offset such as +08:00)',
        'spec.params[3].default: "600519.SH" is not an array: invalid JSON at character 7: '
        'extra data (parameter "symbols" has type array; write it as JSON, e.g. ["a", "b"])',
    ]


def test_enum_values_must_fit_the_type_and_the_default_must_be_one_of_them() -> None:
    wf = _workflow(
        _cmd("a"),
        params=[
            {"name": "universe", "enum": ["csi300", "csi500"], "default": "sp500"},
            {"name": "limit", "type": "integer", "enum": [10, "x", True]},
            {"name": "top", "type": "integer", "enum": [5, 10], "default": "10"},
        ],
    )
    assert _messages(wf) == [
        'spec.params[0].default: "sp500" is not one of "csi300", "csi500" (parameter "universe")',
        'spec.params[1].enum[1]: "x" is not an integer (parameter "limit" has type integer)',
        'spec.params[1].enum[2]: true is not an integer (parameter "limit" has type integer)',
    ]


def test_an_unknown_parameter_type_lists_the_types() -> None:
    with pytest.raises(ValidationError) as caught:
        _workflow(_cmd("a"), params=[{"name": "n", "type": "int"}, {"name": "e", "enum": []}])
    assert [str(p) for p in caught.value.problems] == [
        'spec.params[0].type: "int" is not one of string, integer, number, boolean, date, '
        "datetime, array or object",
        "spec.params[1].enum: must not be empty",
    ]


def test_templates_may_only_use_declared_parameters() -> None:
    fields = {
        "args": {"d": "{{ params.trade_dat }}", "ok": "{{ params.trade_date }}"},
        "env": {"U": "{{ params['universe_sise'] }}"},
        "workingDir": '/data/{{ params["nope"] }}',
        "forEach": "{{ params.symbls }}",
        "compensate": {"function": f"{FN}:takes_anything", "args": {"x": "{{ params.undo }}"}},
    }
    container = {"image": "img", "command": ["{{ params.cmd }}"], "args": ["{{ params.arg }}"]}
    wf = _workflow(
        _cmd("a", command=["echo", "{{ params['trade-day'] }}"], **fields),
        {"name": "k", "container": container, "executor": "kubernetes"},
        params=[
            {"name": "trade_date"},
            {"name": "universe_size", "type": "integer", "default": 60},
            {"name": "symbols", "type": "array", "default": ["AAPL"]},
            {"name": "label", "default": "{{ run.name }}"},
        ],
    )
    assert _messages(wf) == [
        "spec.tasks[0].args.d: template uses params.trade_dat but the workflow declares no "
        'parameter "trade_dat" (did you mean "trade_date"?)',
        "spec.tasks[0].command[1]: template uses params['trade-day'] but the workflow declares "
        'no parameter "trade-day" (did you mean "trade_date"?)',
        "spec.tasks[0].env.U: template uses params.universe_sise but the workflow declares no "
        'parameter "universe_sise" (did you mean "universe_size"?)',
        "spec.tasks[0].workingDir: template uses params.nope but the workflow declares no "
        'parameter "nope"',
        "spec.tasks[0].forEach: template uses params.symbls but the workflow declares no "
        'parameter "symbls" (did you mean "symbols"?)',
        "spec.tasks[0].compensate.args.x: template uses params.undo but the workflow declares "
        'no parameter "undo"',
        "spec.tasks[1].container.command[0]: template uses params.cmd but the workflow declares "
        'no parameter "cmd"',
        "spec.tasks[1].container.args[0]: template uses params.arg but the workflow declares "
        'no parameter "arg"',
    ]


def test_a_bad_default_is_a_problem_of_the_workflow_not_of_its_runs() -> None:
    wf = _workflow(_cmd("a"), params=[{"name": "n", "type": "integer", "default": "x"}])
    run = parse_manifest(
        {
            "apiVersion": "tideflow.dev/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {"name": "daily-1"},
            "spec": {"workflowRef": {"name": "daily"}, "params": {"n": "y"}},
        }
    )
    with pytest.raises(ValidationError) as caught:
        check([("flow.yaml", wf), ("run.yaml", run)])
    assert [str(p) for p in caught.value.problems] == [
        'flow.yaml: spec.params[0].default: "x" is not an integer (parameter "n" has type integer)',
        'run.yaml: spec.params.n: "y" is not an integer (parameter "n" has type integer)',
    ]
    assert check_params(wf, {}) == {"n": "x"}  # submit_run refuses it once rendered


def test_dynamic_parameter_lookups_and_mapping_methods_are_not_checked() -> None:
    args = {
        "a": "{{ params[params.key] }}",
        "b": "{% for k, v in params.items() %}{{ k }}{% endfor %}",
        "c": "{{ params.get('key') }}",
        "d": "{% set params = {'x': 1} %}{{ params.x }}",
    }
    wf = _workflow(_cmd("a", args=args), params=[{"name": "key", "default": "key"}])
    assert _messages(wf) == []


def _hooked(hooks: list[dict[str, Any]], task_hooks: list[dict[str, Any]]) -> Workflow:
    doc = {
        "metadata": {"name": "daily"},
        "spec": {"hooks": hooks, "tasks": [_cmd("fetch", hooks=task_hooks)]},
    }
    return Workflow.model_validate(doc)


def test_hooks_may_only_name_events_the_engine_emits() -> None:
    wf = _hooked(
        [{"on": ["RunSucceeded", "RunFailedd"], "plugin": "email"}],
        [{"on": ["TaskRetrying", "taskfailed", "Whatever", "TaskRetrying"], "plugin": "hook"}],
    )
    messages = _messages(wf)
    assert messages[:3] == [
        'spec.hooks[0].on[1]: unknown event "RunFailedd" (did you mean "RunFailed"?)',
        'spec.tasks[0].hooks[0].on[1]: unknown event "taskfailed" (did you mean "TaskFailed"?)',
        'spec.tasks[0].hooks[0].on[2]: unknown event "Whatever"; known: RunCreated, RunStarted, '
        "RunPaused, RunResumed, RunSucceeded, RunFailed, RunTerminated, TaskStarted, "
        "TaskSucceeded, TaskFailed, TaskRetrying, TaskTimedOut, TaskSkipped, TaskUpstreamFailed, "
        "TaskTerminated",
    ]
    assert messages[3:] == ['spec.tasks[0].hooks[0].on[3]: "TaskRetrying" is listed twice']


def test_every_event_may_be_hooked() -> None:
    wf = _hooked([{"on": list(EVENT_NAMES), "plugin": "all"}], [])
    assert _messages(wf) == []


def test_a_bad_hook_event_is_reported_through_check_with_its_source(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "apiVersion: tideflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: daily}\n"
        "spec:\n  hooks: [{on: [RunFailedd], plugin: email}]\n"
        '  tasks: [{name: a, command: ["true"]}]\n',
        encoding="utf-8",
    )
    with pytest.raises(ValidationError) as caught:
        check(load_path(flow))
    assert [str(p) for p in caught.value.problems] == [
        f'{flow}: spec.hooks[0].on[0]: unknown event "RunFailedd" (did you mean "RunFailed"?)'
    ]
