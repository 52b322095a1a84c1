"""Typed run parameters: turning the values a run is given into the declared types.

A workflow declares its parameters (``params: [{name, type, default, enum,
description}]``); a run receives values as text from ``-p NAME=VALUE``, as
YAML/JSON from ``--params-file``, from a ``WorkflowRun`` manifest or from the
Python client. This module converts each value to its parameter's declared
type and checks it against ``enum``, so that tasks and templates see ``3``
rather than ``"3"``.

Callers:

* :func:`tideflow.definition.validation.check_params` converts the values of a new run,
  and :func:`tideflow.definition.validation.validate_workflow` checks declared defaults
  (:func:`convert`) and ``enum`` values (:func:`convert_type`);
* :func:`tideflow.engine.control.submit_run` converts defaults once their
  templates are rendered, with :func:`convert_values`;
* the CLI parses ``-p`` with :func:`parse_assignments` and reads
  ``--params-file`` with :func:`read_params_file`.

Everything here is pure except :func:`read_params_file`, which reads one file.

Conversion rules. A ``str`` given for a non-string type is parsed; a value
already of the declared type passes; anything else is refused with a message
naming the value, the parameter and its type. ``null`` (``None``) means "no
value" and is accepted for every type.

========== =============================================================
type       accepted
========== =============================================================
string     ``str`` only: ``default: 3`` needs ``type: integer``
integer    ``int`` (not ``bool``, not ``float``); text such as ``"-3"``
number     ``int`` or finite ``float``; text such as ``"2.5"``, ``"1e3"``
boolean    ``bool``; text ``true/false``, ``yes/no``, ``1/0``, any case
date       text ``YYYY-MM-DD`` naming a real calendar day, or a
           :class:`datetime.date`; stored as that text
datetime   ISO 8601 text **with** a UTC offset (``Z`` or ``+08:00``), or
           an aware :class:`datetime.datetime`; stored normalised by
           :meth:`datetime.datetime.isoformat` (``Z`` becomes ``+00:00``).
           A naive date-time is refused: runs are stored and executed
           by engines in any time zone, where it would mean different
           instants.
array      ``list`` (or ``tuple``); text is parsed as JSON
object     ``dict``; text is parsed as JSON
========== =============================================================

Arrays and objects are normalised through JSON (tuples become lists, keys
become strings), since that is how run parameters are stored. ``enum``
membership is checked after conversion.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from tideflow.definition.yamlsafe import ManifestLoader
from tideflow.errors import Problem, ValidationError
from tideflow.model import ParamSpec, ParamType

__all__ = [
    "ParameterValueError",
    "convert",
    "convert_type",
    "convert_values",
    "default_path",
    "parse_assignments",
    "read_params_file",
    "value_path",
]


class ParameterValueError(ValueError):
    """A value does not fit its parameter's declared type or allowed values.

    The message names the value and the parameter, but not where the value
    came from: callers put that in the :class:`~tideflow.errors.Problem` path.
    """


class _Refused(Exception):
    """Raised by a type's converter; the caller words the message."""

    def __init__(self, detail: str = "", hint: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


# --------------------------------------------------------------------------- conversion


def convert(param: ParamSpec, value: Any) -> Any:
    """``value`` converted to ``param``'s type and checked against its ``enum``.

    Args:
        param: the declaration.
        value: what was given: text from the command line, a YAML/JSON value,
            or a Python value from the client.

    Returns:
        The JSON-compatible value tasks and templates will see.

    Raises:
        ParameterValueError: e.g. ``"abc" is not an integer (parameter "n"
            has type integer)``.
    """
    converted = convert_type(param, value)
    if converted is not None and param.enum is not None:
        _check_enum(param, converted)
    return converted


def convert_type(param: ParamSpec, value: Any) -> Any:
    """Like :func:`convert`, without the ``enum`` check (used for the enum values)."""
    if value is None:
        return None
    kind = param.type
    try:
        return _CONVERTERS[kind](value)
    except _Refused as refused:
        detail = f": {refused.detail}" if refused.detail else ""
        hint = f"; {refused.hint}" if refused.hint else ""
        raise ParameterValueError(
            f"{_show(value)} is not {_EXPECTED[kind]}{detail} "
            f'(parameter "{param.name}" has type {kind}{hint})'
        ) from None


def convert_values(
    params: Sequence[ParamSpec],
    values: Mapping[str, Any],
    *,
    given: Collection[str] = (),
    path: str = "",
) -> dict[str, Any]:
    """Every value of ``values`` converted by its declared parameter.

    Values of undeclared names pass unchanged (reporting them is
    :func:`tideflow.definition.validation.check_params`'s job).

    Args:
        params: the workflow's declarations.
        values: parameter name -> value.
        given: names whose values the caller supplied; their problems are
            labelled with :func:`value_path`, the others' as defaults
            (:func:`default_path`).
        path: see :func:`value_path`.

    Raises:
        ValidationError: every value that does not fit, not only the first.
    """
    declared = _declared(params)
    converted = dict(values)
    problems: list[Problem] = []
    for name, value in values.items():
        if name not in declared:
            continue
        index, param = declared[name]
        try:
            converted[name] = convert(param, value)
        except ParameterValueError as exc:
            where = value_path(name, path) if name in given else default_path(index)
            problems.append(Problem(where, str(exc)))
    if problems:
        raise ValidationError(problems)
    return converted


def value_path(name: str, path: str = "") -> str:
    """Where a given value is reported: ``{path}.{name}``, or ``-p NAME`` without a path."""
    return f"{path}.{name}" if path else f"-p {name}"


def default_path(index: int) -> str:
    """Where the default of the ``index``-th declared parameter is reported."""
    return f"spec.params[{index}].default"


def _declared(params: Sequence[ParamSpec]) -> dict[str, tuple[int, ParamSpec]]:
    declared: dict[str, tuple[int, ParamSpec]] = {}
    for i, param in enumerate(params):
        declared.setdefault(param.name, (i, param))  # a duplicate is a validation problem
    return declared


def _check_enum(param: ParamSpec, value: Any) -> None:
    allowed: list[Any] = []
    for option in param.enum or ():
        try:
            allowed.append(convert_type(param, option))
        except ParameterValueError:
            continue  # validate_workflow reports the enum value itself
    if not any(_equal(value, option) for option in allowed):
        raise ParameterValueError(
            f"{_show(value)} is not one of {', '.join(_show(a) for a in allowed)} "
            f'(parameter "{param.name}")'
        )


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_SHOW_LIMIT: Final = 60


def _show(value: Any) -> str:
    """A value as the user wrote it (JSON), shortened when long."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"


# --------------------------------------------------------------------------- one function per type

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_DATETIME_EXAMPLE = "2026-11-30T09:30:00+08:00"


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    natural = _natural_type(value)
    if natural is None:
        raise _Refused()
    scalar = natural not in (ParamType.ARRAY, ParamType.OBJECT)
    raise _Refused(hint=f"declare type: {natural}" + (", or quote the value" if scalar else ""))


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return _parse_int(value)
    raise _Refused()


def _number(value: Any) -> int | float:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        if _INTEGER.fullmatch(value.strip()):
            return _parse_int(value)
        number = float(value)
        if math.isfinite(number):
            return number
    raise _Refused()


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:  # longer than sys.get_int_max_str_digits()
        raise _Refused(str(exc)) from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _Refused(hint="use true/false, yes/no or 1/0")


def _date(value: Any) -> str:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError as exc:
            raise _Refused(str(exc)) from None
    raise _Refused(hint="use YYYY-MM-DD")


def _datetime(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Refused(
                hint=f"use ISO 8601 with a UTC offset, e.g. {_DATETIME_EXAMPLE}"
            ) from None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise _Refused("it has no UTC offset", hint="add Z or an offset such as +08:00")
        return value.isoformat()
    raise _Refused(hint=f"use ISO 8601 with a UTC offset, e.g. {_DATETIME_EXAMPLE}")


def _json_of(kind: type[list[Any]] | type[dict[str, Any]], example: str) -> Callable[[Any], Any]:
    hint = f"write it as JSON, e.g. {example}"

    def convert_json(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                reason = exc.msg[:1].lower() + exc.msg[1:]
                raise _Refused(f"invalid JSON at character {exc.pos + 1}: {reason}", hint) from None
        elif isinstance(value, tuple) and kind is list:
            value = list(value)
        if not isinstance(value, kind):
            raise _Refused(hint=hint)
        try:  # what will be stored: tuples become lists, keys strings
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise _Refused(f"not JSON-compatible ({exc})") from None

    return convert_json


_CONVERTERS: Final[dict[ParamType, Callable[[Any], Any]]] = {
    ParamType.STRING: _string,
    ParamType.INTEGER: _integer,
    ParamType.NUMBER: _number,
    ParamType.BOOLEAN: _boolean,
    ParamType.DATE: _date,
    ParamType.DATETIME: _datetime,
    ParamType.ARRAY: _json_of(list, '["a", "b"]'),
    ParamType.OBJECT: _json_of(dict, '{"key": 1}'),
}

_EXPECTED: Final[dict[ParamType, str]] = {
    ParamType.STRING: "a string",
    ParamType.INTEGER: "an integer",
    ParamType.NUMBER: "a number",
    ParamType.BOOLEAN: "a boolean",
    ParamType.DATE: "a date",
    ParamType.DATETIME: "a date-time",
    ParamType.ARRAY: "an array",
    ParamType.OBJECT: "an object",
}


def _natural_type(value: Any) -> ParamType | None:
    """The declared type that would accept ``value`` as it is, for hints."""
    if isinstance(value, bool):
        return ParamType.BOOLEAN
    if isinstance(value, int):
        return ParamType.INTEGER
    if isinstance(value, float):
        return ParamType.NUMBER
    if isinstance(value, list | tuple):
        return ParamType.ARRAY
    if isinstance(value, dict):
        return ParamType.OBJECT
    if isinstance(value, datetime):
        return ParamType.DATETIME
    if isinstance(value, date):
        return ParamType.DATE
    return None


# --------------------------------------------------------------------------- sources


def parse_assignments(values: list[str]) -> dict[str, str]:
    """``-p NAME=VALUE`` options as a mapping (a later option for a name wins).

    The values stay text; :func:`tideflow.definition.validation.check_params` converts
    them by the declared types.

    Raises:
        ValidationError: every option without ``=`` or without a name, at
            path ``-p <option>``.
    """
    params: dict[str, str] = {}
    problems: list[Problem] = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            problems.append(Problem(f"-p {value}", "expected NAME=VALUE"))
        else:
            params[key] = val
    if problems:
        raise ValidationError(problems)
    return params


def read_params_file(path: Path | str) -> dict[str, Any]:
    """Read ``--params-file``: a YAML or JSON mapping of parameter name -> value.

    A ``.json`` file is read as JSON, anything else as YAML the way manifests
    are read (``2026-11-30`` stays a string, YAML 1.2 booleans, a repeated
    key is an error). An empty file gives no parameters.

    Raises:
        ValidationError: the file is missing or unreadable, is not valid
            YAML/JSON, or is not a mapping with string keys; the problem's
            source is the file name.
    """
    source = str(path)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError([Problem("", "no such file", source)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError([Problem("", f"cannot read file: {exc}", source)]) from None
    data = _parse_json(text, source) if file.suffix == ".json" else _parse_yaml(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        found = _natural_type(data) or ParamType.STRING
        message = (
            f"a params file must be a mapping of parameter name to value, not {_EXPECTED[found]}"
        )
        raise ValidationError([Problem("", message, source)])
    bad = [key for key in data if not isinstance(key, str)]
    if bad:
        problems = [Problem(_show(key), "parameter names must be strings", source) for key in bad]
        raise ValidationError(problems)
    return data


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ValidationError([Problem(where, f"invalid JSON: {exc.msg}", source)]) from None


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=ManifestLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message = exc.problem or exc.context or "invalid YAML"
        raise ValidationError([Problem(where, message, source)]) from None
    except yaml.YAMLError as exc:
        raise ValidationError([Problem("", f"invalid YAML: {exc}", source)]) from None
