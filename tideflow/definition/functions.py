"""Task functions referenced as ``"package.module:attribute"``.

Validation resolves references to prove they import and accept the task's
arguments; executors resolve them to call them. Resolution is cached per
process: importing a module is the expensive part and its result does not
change while the process lives.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from tideflow.errors import FunctionError, Problem, did_you_mean

__all__ = [
    "CONTEXT_PARAMETER",
    "FunctionError",
    "accepts_context",
    "is_async",
    "reference_of",
    "resolve",
    "signature_problems",
]

#: Name of the parameter through which a task function receives its TaskContext.
CONTEXT_PARAMETER = "context"

T = TypeVar("T")

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@functools.lru_cache(maxsize=1024)
def resolve(ref: str) -> Callable[..., Any]:
    """Import ``"package.module:attr"`` (``attr`` may be dotted) and return the callable.

    Raises:
        FunctionError: the reference is malformed, the module does not import,
            an attribute is missing (close matches are suggested) or the
            object found is not callable.
    """
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise FunctionError(f"function reference {ref!r} must look like 'package.module:attribute'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise FunctionError(f'cannot import module "{module_name}" for {ref!r}: {exc}') from exc
    except Exception as exc:  # a module that fails while importing, e.g. SyntaxError
        raise FunctionError(
            f'importing module "{module_name}" for {ref!r} failed: {type(exc).__name__}: {exc}'
        ) from exc
    owner = module_name
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            hint = _suggest(attr, [name for name in dir(target) if not name.startswith("_")])
            raise FunctionError(f'"{owner}" has no attribute "{attr}"{hint}') from None
        owner = f"{owner}{'.' if ':' in owner else ':'}{attr}"
    if not callable(target):
        raise FunctionError(f"{ref!r} is not callable (it is a {type(target).__name__})")
    return target  # type: ignore[no-any-return]


def reference_of(fn: Callable[..., Any]) -> str:
    """The ``"module:qualname"`` reference of a module-level function or class.

    Raises:
        FunctionError: ``fn`` is a lambda, a nested function, a partial or a
            callable object, i.e. something another process cannot import by name.
    """
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise FunctionError(
            f"{fn!r} has no importable name; pass a module-level function or a "
            "'package.module:attribute' string"
        )
    if qualname == "<lambda>" or "<lambda>" in qualname:
        raise FunctionError("lambdas cannot be task functions: tasks refer to functions by name")
    if "<locals>" in qualname:
        raise FunctionError(
            f"{qualname} is defined inside another function; task functions must be "
            "defined at module level so workers can import them"
        )
    ref = f"{module}:{qualname}"
    try:
        found = resolve(ref)
    except FunctionError as exc:
        raise FunctionError(f"{ref} cannot be imported back by name: {exc}") from exc
    if found is not fn and getattr(found, "__func__", found) is not getattr(fn, "__func__", fn):
        raise FunctionError(f"importing {ref} gives a different object than the one passed")
    return ref


def _unwrap(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _cached(compute: Callable[[Callable[..., Any]], T]) -> Callable[[Callable[..., Any]], T]:
    """Memoise a fact about a callable: executors ask it for every attempt, and
    ``inspect.signature`` costs more than a no-op task. Callables that cannot be
    hashed are introspected every time."""
    cached = functools.lru_cache(maxsize=1024)(compute)

    @functools.wraps(compute)
    def fact(fn: Callable[..., Any]) -> T:
        try:
            return cached(fn)
        except TypeError:  # unhashable callable object
            return compute(fn)

    return fact


@_cached
def is_async(fn: Callable[..., Any]) -> bool:
    """True for coroutine functions, also behind ``functools.partial`` or as ``async __call__``."""
    target = _unwrap(fn)
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - we want the method itself
    return not inspect.isroutine(target) and inspect.iscoroutinefunction(call)


@_cached
def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no introspectable signature
        return None


@_cached
def accepts_context(fn: Callable[..., Any]) -> bool:
    """True if ``fn`` has a keyword-passable parameter named ``context``."""
    signature = _signature(fn)
    if signature is None:
        return False
    param = signature.parameters.get(CONTEXT_PARAMETER)
    return param is not None and param.kind in _KEYWORD_KINDS


def signature_problems(fn: Callable[..., Any], arg_names: set[str], path: str) -> list[Problem]:
    """Problems calling ``fn(**args)`` with keyword arguments named ``arg_names``.

    Reports unknown argument names (unless ``fn`` takes ``**kwargs``) at
    ``{path}.{name}`` and required parameters that are not given (other than
    ``context``, which the engine passes) at ``path``.
    """
    signature = _signature(fn)
    if signature is None:
        return []
    params = signature.parameters
    keyword = [p.name for p in params.values() if p.kind in _KEYWORD_KINDS]
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    label = getattr(fn, "__qualname__", repr(fn))
    problems: list[Problem] = []
    if not takes_kwargs:
        for name in sorted(arg_names - set(keyword)):
            hint = _suggest(name, [k for k in keyword if k != CONTEXT_PARAMETER])
            problems.append(Problem(f"{path}.{name}", f'{label}() has no parameter "{name}"{hint}'))
    for param in params.values():
        required = param.default is inspect.Parameter.empty and param.kind in (
            *_KEYWORD_KINDS,
            inspect.Parameter.POSITIONAL_ONLY,
        )
        if required and param.name != CONTEXT_PARAMETER and param.name not in arg_names:
            problems.append(Problem(path, f'missing required argument "{param.name}" of {label}()'))
        elif required and param.kind is inspect.Parameter.POSITIONAL_ONLY:
            problems.append(
                Problem(path, f'{label}() takes "{param.name}" positionally; tasks pass keywords')
            )
    return problems


_suggest = did_you_mean
