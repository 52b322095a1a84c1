"""Typed run parameters: conversion, enum, -p assignments, params files, submit_run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from tideflow.definition.loading import parse_manifest
from tideflow.definition.parameters import (
    ParameterValueError,
    convert,
    convert_values,
    parse_assignments,
    read_params_file,
)
from tideflow.definition.templating import render
from tideflow.definition.validation import check_params
from tideflow.engine import control
from tideflow.engine.ports import RunRecord, Store, TaskRecord
from tideflow.errors import Problem, ValidationError
from tideflow.model import ParamSpec, Workflow


def _param(kind: str = "string", **fields: Any) -> ParamSpec:
    return ParamSpec.model_validate({"name": "p", "type": kind, **fields})


def _refusal(kind: str, value: Any, **fields: Any) -> str:
    with pytest.raises(ParameterValueError) as caught:
        convert(_param(kind, **fields), value)
    return str(caught.value)


def _workflow(*params: dict[str, Any]) -> Workflow:
    workflow = parse_manifest(
        {
            "apiVersion": "tideflow.dev/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "typed"},
            "spec": {"params": list(params), "tasks": [{"name": "a", "command": ["true"]}]},
        }
    )
    assert isinstance(workflow, Workflow)
    return workflow


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("string", "3", "3"),
        ("string", "", ""),
        ("integer", "3", 3),
        ("integer", " -42 ", -42),
        ("integer", 7, 7),
        ("number", "2.5", 2.5),
        ("number", "1e3", 1000.0),
        ("number", "3", 3),
        ("number", 3, 3),
        ("number", 0.5, 0.5),
        ("boolean", "true", True),
        ("boolean", "YES", True),
        ("boolean", "1", True),
        ("boolean", "False", False),
        ("boolean", "no", False),
        ("boolean", "0", False),
        ("boolean", False, False),
        ("date", "2026-11-30", "2026-11-30"),
        ("date", "2024-02-29", "2024-02-29"),
        ("date", date(2026, 11, 30), "2026-11-30"),
        ("datetime", "2026-11-30T09:30:00+08:00", "2026-11-30T09:30:00+08:00"),
        ("datetime", "2026-11-30T01:30:00Z", "2026-11-30T01:30:00+00:00"),
        ("datetime", "2026-11-30 09:30:00.5+08:00", "2026-11-30T09:30:00.500000+08:00"),
        ("datetime", datetime(2026, 11, 30, 1, 30, tzinfo=UTC), "2026-11-30T01:30:00+00:00"),
        ("array", '["600519.SH", "000001.SZ"]', ["600519.SH", "000001.SZ"]),
        ("array", ["a", 1], ["a", 1]),
        ("array", ("a", "b"), ["a", "b"]),
        ("object", '{"k": [1, 2]}', {"k": [1, 2]}),
        ("object", {"k": True}, {"k": True}),
    ],
)
def test_values_are_converted_to_the_declared_type(kind: str, value: Any, expected: Any) -> None:
    converted = convert(_param(kind), value)
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize("kind", ["string", "integer", "date", "datetime", "array", "object"])
def test_null_means_no_value_for_every_type(kind: str) -> None:
    assert convert(_param(kind), None) is None


def test_conversion_is_idempotent_so_rendered_values_can_be_converted_again() -> None:
    for kind, value in [("datetime", "2026-11-30T01:30:00Z"), ("number", "1e3"), ("integer", "3")]:
        once = convert(_param(kind), value)
        assert convert(_param(kind), once) == once


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("integer", "abc", '"abc" is not an integer (parameter "p" has type integer)'),
        ("integer", "2.5", '"2.5" is not an integer (parameter "p" has type integer)'),
        ("integer", 2.5, '2.5 is not an integer (parameter "p" has type integer)'),
        ("integer", True, 'true is not an integer (parameter "p" has type integer)'),
        ("number", "nan", '"nan" is not a number (parameter "p" has type number)'),
        ("number", "1e999", '"1e999" is not a number (parameter "p" has type number)'),
        ("number", False, 'false is not a number (parameter "p" has type number)'),
        (
            "boolean",
            "maybe",
            '"maybe" is not a boolean (parameter "p" has type boolean; '
            "use true/false, yes/no or 1/0)",
        ),
        (
            "boolean",
            1,
            '1 is not a boolean (parameter "p" has type boolean; use true/false, yes/no or 1/0)',
        ),
        (
            "date",
            "2026-02-30",
            '"2026-02-30" is not a date: day is out of range for month '
            '(parameter "p" has type date)',
        ),
        (
            "date",
            "30/11/2026",
            '"30/11/2026" is not a date (parameter "p" has type date; use YYYY-MM-DD)',
        ),
        (
            "date",
            "20261130",
            '"20261130" is not a date (parameter "p" has type date; use YYYY-MM-DD)',
        ),
        (
            "datetime",
            "2026-11-30T09:30:00",
            '"2026-11-30T09:30:00" is not a date-time: it has no UTC offset '
            '(parameter "p" has type datetime; add Z or an offset such as +08:00)',
        ),
        (
            "datetime",
            "tomorrow",
            '"tomorrow" is not a date-time (parameter "p" has type datetime; '
            "use ISO 8601 with a UTC offset, e.g. 2026-11-30T09:30:00+08:00)",
        ),
        (
            "array",
            "600519.SH,000001.SZ",
            '"600519.SH,000001.SZ" is not an array: invalid JSON at character 7: extra data '
            '(parameter "p" has type array; write it as JSON, e.g. ["a", "b"])',
        ),
        (
            "array",
            '{"a": 1}',
            '"{\\"a\\": 1}" is not an array '
            '(parameter "p" has type array; write it as JSON, e.g. ["a", "b"])',
        ),
        (
            "object",
            [1],
            '[1] is not an object (parameter "p" has type object; '
            'write it as JSON, e.g. {"key": 1})',
        ),
    ],
)
def test_refusals_name_the_value_the_parameter_and_its_type(
    kind: str, value: Any, message: str
) -> None:
    assert _refusal(kind, value) == message


def test_a_string_parameter_refuses_other_values_and_says_which_type_to_declare() -> None:
    assert _refusal("string", 60) == (
        '60 is not a string (parameter "p" has type string; declare type: integer, '
        "or quote the value)"
    )
    assert _refusal("string", True) == (
        'true is not a string (parameter "p" has type string; declare type: boolean, '
        "or quote the value)"
    )
    assert _refusal("string", ["AAPL"]) == (
        '["AAPL"] is not a string (parameter "p" has type string; declare type: array)'
    )


def test_a_naive_datetime_object_is_refused_too() -> None:
    message = _refusal("datetime", datetime(2026, 11, 30, 9, 30))
    assert "it has no UTC offset" in message


def test_arrays_must_be_json_compatible() -> None:
    message = _refusal("array", [date(2026, 11, 30)])
    assert message.startswith("[datetime.date(2026, 11, 30)] is not an array: not JSON-compatible")


def test_long_values_are_shortened_in_messages() -> None:
    message = _refusal("integer", "x" * 200)
    assert message == f'"{"x" * 58}… is not an integer (parameter "p" has type integer)'


def test_an_integer_too_long_to_parse_is_refused_not_a_crash() -> None:
    message = _refusal("integer", "9" * 5000)
    assert message.startswith(f'"{"9" * 58}… is not an integer: Exceeds the limit')


def test_enum_is_checked_after_conversion_and_lists_the_allowed_values() -> None:
    param = _param("integer", enum=[10, 20])
    assert convert(param, "20") == 20
    with pytest.raises(ParameterValueError) as caught:
        convert(param, "30")
    assert str(caught.value) == '30 is not one of 10, 20 (parameter "p")'


def test_enum_compares_like_json_values() -> None:
    assert convert(_param("number", enum=[1, 2.5]), "1.0") == 1.0
    with pytest.raises(ParameterValueError, match='"yes" is not one of "true"'):
        convert(_param(enum=["true"]), "yes")
    with pytest.raises(ParameterValueError) as caught:
        convert(_param("object", enum=[{"a": 1}]), '{"a": true}')
    assert str(caught.value) == '{"a": true} is not one of {"a": 1} (parameter "p")'


def test_convert_values_reports_every_problem_with_where_the_value_came_from() -> None:
    params = [_param("integer").model_copy(update={"name": "n"}), _param("date")]
    with pytest.raises(ValidationError) as caught:
        convert_values(params, {"n": "x", "p": "soon", "other": 1}, given={"n"})
    assert [str(p) for p in caught.value.problems] == [
        '-p n: "x" is not an integer (parameter "n" has type integer)',
        'spec.params[1].default: "soon" is not a date (parameter "p" has type date; '
        "use YYYY-MM-DD)",
    ]
    assert convert_values(params, {"n": "3", "other": "kept"}) == {"n": 3, "other": "kept"}


# --------------------------------------------------------------------------- check_params


def test_tasks_receive_converted_values_and_templates_see_them() -> None:
    wf = _workflow({"name": "n", "type": "integer"})
    params = check_params(wf, {"n": "3"})
    assert params == {"n": 3}
    rendered = render("{{ params.n }}", {"params": params})
    assert rendered == 3 and type(rendered) is int
    assert render("{{ params.n + 1 }}", {"params": params}) == 4


def test_check_params_converts_given_values_and_defaults() -> None:
    wf = _workflow(
        {"name": "symbols", "type": "array"},
        {"name": "dry_run", "type": "boolean", "default": "no"},
        {"name": "day", "type": "date", "default": "{{ schedule.date }}"},
    )
    assert check_params(wf, {"symbols": '["600519.SH","000001.SZ"]'}) == {
        "symbols": ["600519.SH", "000001.SZ"],
        "dry_run": False,
        "day": "{{ schedule.date }}",
    }


def test_check_params_reports_every_bad_value_at_once() -> None:
    wf = _workflow(
        {"name": "n", "type": "integer"},
        {"name": "universe", "enum": ["csi300", "csi500"], "default": "csi300"},
        {"name": "day", "type": "date"},
    )
    with pytest.raises(ValidationError) as caught:
        check_params(wf, {"n": "abc", "universe": "sp500", "dy": "2026-11-30"})
    assert [str(p) for p in caught.value.problems] == [
        '-p dy: unknown parameter "dy" (did you mean "day"?); known: n, universe, day',
        '-p n: "abc" is not an integer (parameter "n" has type integer)',
        '-p universe: "sp500" is not one of "csi300", "csi500" (parameter "universe")',
        'parameter "day" is required',
    ]


def test_check_params_labels_values_of_a_document_with_their_path() -> None:
    wf = _workflow({"name": "n", "type": "integer"})
    with pytest.raises(ValidationError) as caught:
        check_params(wf, {"n": "x"}, path="spec.params")
    assert [str(p) for p in caught.value.problems] == [
        'spec.params.n: "x" is not an integer (parameter "n" has type integer)'
    ]


# --------------------------------------------------------------------------- submit_run


class _Store:
    """Just enough of a Store for submit_run: keeps the record it is given."""

    def create_run(self, record: RunRecord, tasks: Sequence[TaskRecord]) -> RunRecord:
        return record


_NOW = datetime(2026, 11, 30, 8, 0, tzinfo=timezone(timedelta(hours=8)))


def test_submit_run_converts_rendered_defaults_by_type() -> None:
    wf = _workflow(
        {"name": "day", "type": "date", "default": "{{ schedule.date }}"},
        {"name": "at", "type": "datetime", "default": "{{ schedule.time }}"},
        {"name": "n", "type": "integer", "default": "{{ run.name | length }}"},
        {"name": "limit", "type": "integer", "default": 5},
    )
    record = control.submit_run(cast(Store, _Store()), wf, {"limit": "7"}, name="typed-1", now=_NOW)
    assert record.params == {
        "day": "2026-11-30",
        "at": "2026-11-30T08:00:00+08:00",
        "n": 7,
        "limit": 7,
    }


def test_submit_run_refuses_a_rendered_default_of_the_wrong_type() -> None:
    wf = _workflow({"name": "n", "type": "integer", "default": "{{ run.name }}"})
    with pytest.raises(ValidationError) as caught:
        control.submit_run(cast(Store, _Store()), wf, name="typed-1", now=_NOW)
    assert [str(p) for p in caught.value.problems] == [
        'spec.params[0].default: "typed-1" is not an integer (parameter "n" has type integer)'
    ]


def test_submit_run_refuses_a_bad_default_of_a_workflow_that_was_never_validated() -> None:
    wf = _workflow({"name": "n", "type": "integer", "default": "x"})
    with pytest.raises(ValidationError) as caught:
        control.submit_run(cast(Store, _Store()), wf, name="typed-1", now=_NOW)
    assert [str(p) for p in caught.value.problems] == [
        'spec.params[0].default: "x" is not an integer (parameter "n" has type integer)'
    ]


def test_submit_run_labels_a_rendered_given_template_like_the_option() -> None:
    wf = _workflow({"name": "day", "type": "date"})
    with pytest.raises(ValidationError) as caught:
        control.submit_run(
            cast(Store, _Store()), wf, {"day": "{{ run.name }}"}, name="typed-1", now=_NOW
        )
    assert [str(p) for p in caught.value.problems] == [
        '-p day: "typed-1" is not a date (parameter "day" has type date; use YYYY-MM-DD)'
    ]


# --------------------------------------------------------------------------- sources


def test_parse_assignments_splits_at_the_first_equals_sign() -> None:
    assert parse_assignments(["n=3", "expr=a=b", "empty=", "n=4"]) == {
        "n": "4",
        "expr": "a=b",
        "empty": "",
    }


def test_parse_assignments_reports_every_malformed_option() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_assignments(["n", "=3", "ok=1"])
    assert caught.value.problems == [
        Problem("-p n", "expected NAME=VALUE"),
        Problem("-p =3", "expected NAME=VALUE"),
    ]


def test_a_yaml_params_file_keeps_dates_as_text(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("trade_date: 2026-11-30\nn: 3\nflag: yes\nsymbols: [a, b]\n")
    assert read_params_file(path) == {
        "trade_date": "2026-11-30",
        "n": 3,
        "flag": "yes",
        "symbols": ["a", "b"],
    }


def test_a_json_params_file_is_read_as_json(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text('{"n": 3, "symbols": ["600519.SH"]}')
    assert read_params_file(path) == {"n": 3, "symbols": ["600519.SH"]}


def test_an_empty_params_file_gives_no_parameters(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("# nothing yet\n")
    assert read_params_file(path) == {}


NOT_A_MAPPING = "a params file must be a mapping of parameter name to value, not "


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        (
            "p.yaml",
            "n: [1, 2\n",
            Problem("line 2, column 1", "expected ',' or ']', but got '<stream end>'"),
        ),
        ("p.yaml", "n: 1\nn: 2\n", Problem("line 2, column 1", 'duplicate key "n"')),
        (
            "p.json",
            '{"n": 1,}',
            Problem(
                "line 1, column 9",
                "invalid JSON: Expecting property name enclosed in double quotes",
            ),
        ),
        ("p.yaml", "- n\n- m\n", Problem("", NOT_A_MAPPING + "an array")),
        ("p.json", "3", Problem("", NOT_A_MAPPING + "an integer")),
        ("p.yaml", "1: x\n", Problem("1", "parameter names must be strings")),
    ],
)
def test_a_bad_params_file_is_a_problem_of_that_file(
    tmp_path: Path, name: str, text: str, problem: Problem
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValidationError) as caught:
        read_params_file(path)
    assert caught.value.problems == [
        Problem(problem.path, problem.message, str(path)),
    ]


def test_a_missing_params_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        read_params_file(tmp_path / "nope.yaml")
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path / 'nope.yaml'}: no such file"]
