"""Task function references: resolving, async detection, signatures."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.unit import taskfns
from tideflow.definition.functions import (
    FunctionError,
    accepts_context,
    is_async,
    reference_of,
    resolve,
    signature_problems,
)
from tideflow.errors import Problem


def test_resolve_imports_module_and_attribute() -> None:
    assert resolve("tests.unit.taskfns:fetch_bars") is taskfns.fetch_bars


def test_resolve_follows_dotted_attributes() -> None:
    assert resolve("tests.unit.taskfns:Vendor.download") is taskfns.Vendor.download


def test_resolve_reports_the_import_error() -> None:
    with pytest.raises(FunctionError) as caught:
        resolve("no_such_package.quant:f")
    assert str(caught.value) == (
        "cannot import module \"no_such_package.quant\" for 'no_such_package.quant:f': "
        "No module named 'no_such_package'"
    )


def test_resolve_suggests_a_close_attribute_name() -> None:
    with pytest.raises(FunctionError) as caught:
        resolve("tests.unit.taskfns:fetch_bar")
    assert str(caught.value) == (
        '"tests.unit.taskfns" has no attribute "fetch_bar" (did you mean "fetch_bars"?)'
    )


def test_resolve_names_the_owner_of_a_missing_nested_attribute() -> None:
    with pytest.raises(FunctionError, match=r'"tests\.unit\.taskfns:Vendor" has no attribute "x"'):
        resolve("tests.unit.taskfns:Vendor.x")


def test_resolve_refuses_what_is_not_callable() -> None:
    with pytest.raises(FunctionError, match=r"is not callable \(it is a int\)"):
        resolve("tests.unit.taskfns:NOT_CALLABLE")


def test_resolve_refuses_a_malformed_reference() -> None:
    with pytest.raises(FunctionError, match=r"must look like 'package\.module:attribute'"):
        resolve("tests.unit.taskfns.fetch_bars")


def test_is_async_sees_coroutine_functions_partials_and_async_call() -> None:
    assert is_async(taskfns.fetch_async)
    assert is_async(taskfns.async_partial)
    assert is_async(taskfns.async_callable)
    assert not is_async(taskfns.fetch_bars)
    assert not is_async(functools.partial(taskfns.fetch_bars, "AAPL"))


def test_accepts_context_looks_for_a_parameter_named_context() -> None:
    assert accepts_context(taskfns.fetch_bars)
    assert accepts_context(taskfns.needs_context)
    assert not accepts_context(taskfns.list_symbols)
    assert not accepts_context(taskfns.takes_anything)


def test_signature_problems_reports_unknown_and_missing_arguments() -> None:
    problems = signature_problems(taskfns.fetch_bars, {"symbl", "date"}, "spec.tasks[1].args")
    assert problems == [
        Problem(
            "spec.tasks[1].args.symbl",
            'fetch_bars() has no parameter "symbl" (did you mean "symbol"?)',
        ),
        Problem("spec.tasks[1].args", 'missing required argument "symbol" of fetch_bars()'),
    ]


def test_signature_problems_never_require_context() -> None:
    assert signature_problems(taskfns.needs_context, set(), "args") == []


def test_signature_problems_accept_anything_with_kwargs() -> None:
    assert signature_problems(taskfns.takes_anything, {"a", "b"}, "args") == []


def test_reference_of_names_a_module_level_function() -> None:
    assert reference_of(taskfns.fetch_bars) == "tests.unit.taskfns:fetch_bars"
    assert reference_of(taskfns.Vendor.download) == "tests.unit.taskfns:Vendor.download"


def test_reference_of_refuses_lambdas() -> None:
    with pytest.raises(FunctionError, match="lambdas cannot be task functions"):
        reference_of(lambda: None)


def test_reference_of_refuses_nested_functions() -> None:
    def inner() -> None:
        return None

    with pytest.raises(FunctionError, match="is defined inside another function"):
        reference_of(inner)


def test_reference_of_refuses_callable_objects_without_a_name() -> None:
    partial: Any = functools.partial(taskfns.fetch_bars, "AAPL")
    with pytest.raises(FunctionError, match="has no importable name"):
        reference_of(partial)


class _Unhashable:
    """A callable object that cannot be a cache key."""

    __hash__ = None  # type: ignore[assignment]

    async def __call__(self, context: Any) -> None:
        return None


def test_introspection_is_cached_per_callable_and_works_for_unhashable_ones() -> None:
    assert accepts_context(taskfns.fetch_bars) is accepts_context(taskfns.fetch_bars) is True
    unhashable = _Unhashable()
    assert is_async(unhashable)
    assert accepts_context(unhashable)
