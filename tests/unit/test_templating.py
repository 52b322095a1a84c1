"""Templates: native rendering, the sandbox, and static analysis."""

from __future__ import annotations

from typing import Any

import pytest

from tideflow.definition.templating import (
    TemplateError,
    _analyse_jinja,
    _analyse_simple,
    referenced_names,
    referenced_params,
    referenced_tasks,
    render,
    task_views,
    template_problems,
)
from tideflow.errors import Problem

INTERNALS = "only params, tasks, item, index, run and schedule are available"


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "params": {"trade_date": "2026-11-30", "limit": 3},
        "tasks": task_views({"list-symbols": ["AAPL", "MSFT"], "stats": {"rows": 10}}),
        "item": "AAPL",
        "index": 0,
        "run": {"name": "daily-1", "namespace": "quant", "workflow": "daily"},
        "schedule": {"date": "2026-11-30"},
    }


def test_a_single_expression_renders_to_its_native_value(context: dict[str, Any]) -> None:
    assert render("{{ tasks['list-symbols'].output }}", context) == ["AAPL", "MSFT"]
    assert render("{{params.limit}}", context) == 3
    assert render("  {{ tasks['stats'].output }} ", context) == {"rows": 10}


def test_a_string_with_text_around_renders_to_text(context: dict[str, Any]) -> None:
    assert render("bars-{{ item }}-{{ params.trade_date }}.csv", context) == (
        "bars-AAPL-2026-11-30.csv"
    )
    assert render("{{ params.limit }}{{ index }}", context) == "30"


def test_render_walks_dicts_and_lists_and_passes_other_values(context: dict[str, Any]) -> None:
    value = {"symbols": "{{ tasks['list-symbols'].output }}", "n": 5, "x": ["{{ item }}", None]}
    assert render(value, context) == {"symbols": ["AAPL", "MSFT"], "n": 5, "x": ["AAPL", None]}


def test_plain_strings_are_returned_unchanged(context: dict[str, Any]) -> None:
    assert render("no template }} here", context) == "no template }} here"


def test_filters_and_statements_are_available(context: dict[str, Any]) -> None:
    assert render("{{ tasks['list-symbols'].output | length }}", context) == 2
    text = "{% for s in tasks['list-symbols'].output %}{{ s }};{% endfor %}"
    assert render(text, context) == "AAPL;MSFT;"


def test_an_undefined_variable_raises_a_template_error_naming_the_template(
    context: dict[str, Any],
) -> None:
    with pytest.raises(TemplateError, match=r"template '\{\{ parms.x \}\}': 'parms' is undefined"):
        render("{{ parms.x }}", context)


def test_a_missing_task_output_is_an_error_not_an_empty_string(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="has no attribute 'nope'"):
        render("x-{{ tasks['nope'].output }}", context)


def test_the_sandbox_refuses_python_internals_at_render_time(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="refused by the sandbox"):
        render("{{ ''.__class__ }}", context)
    with pytest.raises(TemplateError, match="refused by the sandbox"):
        render("{{ (params|attr('__class__')).__mro__ }}", context)


def test_an_exception_while_rendering_becomes_a_template_error(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match=r"failed: ZeroDivisionError"):
        render("{{ 1 / 0 }}", context)


def test_internals_are_refused_statically_with_the_path() -> None:
    problems = template_problems({"a": ["ok", "{{ ''.__class__ }}"]}, "spec.tasks[1].args")
    assert problems == [
        Problem(
            "spec.tasks[1].args.a[1]",
            f'template reaches for Python internals ("__class__"); {INTERNALS}',
        )
    ]


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("{{ x['__globals__'] }}", "__globals__"),
        ('{{ x["_private"] }}', "_private"),
        ("{{ params|attr('__class__') }}", "__class__"),
        ("{{ f.func_globals }}", "func_globals"),
        ("{{ g.gi_frame }}", "gi_frame"),
        ("{{ t.mro() }}", "mro"),
        ("{% for c in ''.__class__.__subclasses__() %}{% endfor %}", "__class__"),
    ],
)
def test_every_internal_reference_is_refused_statically(template: str, name: str) -> None:
    messages = [p.message for p in template_problems(template, "args.x")]
    assert f'template reaches for Python internals ("{name}"); {INTERNALS}' in messages


def test_syntax_errors_carry_jinja_message() -> None:
    assert template_problems({"x": "{{ a b }}"}, "spec.tasks[0].args") == [
        Problem(
            "spec.tasks[0].args.x",
            "template syntax error: line 1: expected token 'end of print statement', got 'b'",
        )
    ]


def test_an_unknown_filter_is_a_static_problem() -> None:
    [problem] = template_problems("{{ tasks.a.output | lenght }}", "args.n")
    assert problem.message == 'template syntax error: line 1: no filter named "lenght"'


def test_clean_templates_have_no_problems() -> None:
    value = {"a": "{{ tasks['x'].output }}", "b": [1, "{{ item | upper }}"], "c": 3}
    assert template_problems(value, "args") == []


def test_referenced_tasks_finds_every_spelling() -> None:
    value = {
        "a": "{{ tasks['one'].output }}",
        "b": ['{{ tasks["two"].output | length }}', "{{ tasks.three.output }}"],
        "c": "{% for x in tasks['four'].output %}{{ x }}{% endfor %}",
        "d": "{{ params.tasks }}",
    }
    assert referenced_tasks(value) == {"one", "two", "three", "four"}


def test_referenced_params_finds_every_static_spelling() -> None:
    value = {
        "a": "{{ params.trade_date }}",
        "b": ["{{ params['universe'] | upper }}", '{{ params["top-n"] }}-{{ item }}'],
        "c": "{% if params.dry_run %}{{ params.limit + 1 }}{% endif %}",
        "d": "{{ tasks.params.output }}-{{ params.symbols[0] }}",
    }
    assert referenced_params(value) == {
        "trade_date",
        "universe",
        "top-n",
        "dry_run",
        "limit",
        "symbols",
    }


def test_dynamic_lookups_and_methods_are_not_parameter_names() -> None:
    value = [
        "{{ params[name] }}",
        "{{ params[0] }}",
        "{{ params.get('x') }}",
        "{% for k in params.keys() %}{{ k }}{% endfor %}",
        "{% set params = {'y': 1} %}{{ params.y }}",
        "{{ params|attr('z') }}",
    ]
    assert referenced_params(value) == set()


def test_referenced_names_lists_top_level_variables_only() -> None:
    value = ["{{ parms.x }}", "{% for s in item %}{{ s }}{% endfor %}", "{{ tasks.a.output }}"]
    assert referenced_names(value) == {"parms", "item", "tasks"}


@pytest.mark.parametrize(
    "template",
    [
        "{{ tasks['list-symbols'].output }}",
        'x-{{ tasks["a"].output[0] }}-{{ item }}',
        "{{ params.trade_date | upper }}",
        "{{ x['__globals__'] }} and {{ y._z }}",
        "{{ tasks.a.output | length }}",
        "{{ run.name }}/{{ index }}",
        "}} {{ item }}",
        "{{ params.trade_date }}",
        "{{ params['universe'] }}-{{ params[\"top-n\"].x }}",
        "{{ params.symbols[0] }} {{ params[0] }}",
        "{{ params.a.b | length }}/{{ tasks.params.output }}",
        "{{ item.params }}-{{ run['params'] }}",
    ],
)
def test_fast_analysis_agrees_with_jinja(template: str) -> None:
    assert _analyse_simple(template) == _analyse_jinja(template)


@pytest.mark.parametrize(
    "template",
    ["{{ true }}", "{{ a + b }}", "{% if x %}{{ y }}{% endif %}", "{{- item }}", "{{ x | nope }}"],
)
def test_fast_analysis_leaves_anything_else_to_jinja(template: str) -> None:
    assert _analyse_simple(template) is None
