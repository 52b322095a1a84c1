"""``{{ … }}`` templates in task arguments, rendered in a Jinja sandbox.

Two audiences call this module:

* validation (:mod:`tideflow.definition.validation`) checks templates statically, before
  anything runs: syntax, references to Python internals, which tasks, which
  parameters and which top-level variables a template uses;
* the engine renders them when a task is dispatched, with a context of
  ``params``, ``tasks`` (name -> object with ``.output``), ``item``, ``index``,
  ``run`` and ``schedule``.

A string that is exactly one expression (``"{{ tasks['a'].output }}"``)
renders to the expression's native Python value, so a list stays a list; any
other string renders to text. Every template string is parsed once per
process (the parse results are cached), so checking or rendering the same
template in thousands of tasks costs one parse.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
import jinja2.exceptions
import jinja2.meta
import jinja2.sandbox
from jinja2 import nodes

from tideflow.errors import Problem, TemplateError

__all__ = [
    "CONTEXT_NAMES",
    "TaskView",
    "TemplateError",
    "TemplateInfo",
    "inspect_templates",
    "is_template",
    "referenced_names",
    "referenced_params",
    "referenced_tasks",
    "render",
    "task_views",
    "template_problems",
]

#: The top-level names a template may use.
CONTEXT_NAMES = ("params", "tasks", "item", "index", "run", "schedule")

# Attribute names refused statically on top of any name starting with "_": the
# sandbox's own lists plus frame/code/globals handles of functions, generators,
# coroutines, frames and tracebacks, and type.mro.
_UNSAFE_NAMES = frozenset(
    {
        *jinja2.sandbox.UNSAFE_FUNCTION_ATTRIBUTES,
        *jinja2.sandbox.UNSAFE_METHOD_ATTRIBUTES,
        *jinja2.sandbox.UNSAFE_GENERATOR_ATTRIBUTES,
        *jinja2.sandbox.UNSAFE_COROUTINE_ATTRIBUTES,
        *jinja2.sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
        "mro",
        "func_globals",
        "func_code",
        "func_closure",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "f_code",
        "tb_frame",
        "tb_next",
        "gi_yieldfrom",
        "cr_await",
        "ag_await",
    }
)

_MARKERS = ("{{", "{%", "{#")
# "{{ expr }}" and nothing else (surrounding whitespace allowed); the inner part
# must not open or close another block, so "{{ a }}-{{ b }}" is text.
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|\{#).)*)\}\}\s*$", re.S)

_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class TaskView:
    """What a template sees as ``tasks['name']``: the task's output (and its phase
    and attempt, when the engine renders)."""

    output: Any
    phase: str | None = None
    attempt: int | None = None


def task_views(outputs: Mapping[str, Any]) -> dict[str, TaskView]:
    """The ``tasks`` context entry for a mapping of task name -> output."""
    return {name: TaskView(output) for name, output in outputs.items()}


def is_template(text: str) -> bool:
    """True if ``text`` contains template markup (``{{``, ``{%`` or ``{#``)."""
    return any(marker in text for marker in _MARKERS)


# --------------------------------------------------------------------------- static analysis


@dataclass(frozen=True)
class _Analysis:
    syntax_error: str | None = None
    internals: tuple[str, ...] = ()
    tasks: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    params: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=16384)
def _analyse(source: str) -> _Analysis:
    simple = _analyse_simple(source)
    return simple if simple is not None else _analyse_jinja(source)


# Jinja's parser costs ~100 µs a template, too much for 10,000 tasks with distinct
# arguments. Most templates are plain lookups such as "{{ tasks['a'].output }}" or
# "bars-{{ item }}.csv"; those are analysed by the regular expressions below, and
# anything else goes to the parser. A test proves both give the same answers.
_SIMPLE_BLOCK = re.compile(r"\{\{(?P<inner>.*?)\}\}", re.S)
_SIMPLE_EXPRESSION = re.compile(
    r"""\s*(?P<name>[A-Za-z_]\w*)
    (?P<accessors>(?:\s*\.\s*[A-Za-z_]\w*|\s*\[\s*(?:'[^'\\]*'|"[^"\\]*"|\d+)\s*\])*)
    (?P<filters>(?:\s*\|\s*[A-Za-z_]\w*)*)\s*""",
    re.X,
)
_ACCESSOR = re.compile(
    r"""\.\s*(?P<attr>[A-Za-z_]\w*)|\[\s*(?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|\d+)"""
)
_JINJA_WORDS = frozenset(
    {"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if"}
    | {"else", "for", "recursive", "import", "include", "with", "without", "context"}
)


def _analyse_simple(source: str) -> _Analysis | None:
    """The analysis of a template made only of ``{{ name.attr['key'] | filter }}`` blocks."""
    if any(marker in _SIMPLE_BLOCK.sub("", source) for marker in _MARKERS):
        return None
    internals: list[str] = []
    tasks: set[str] = set()
    names: set[str] = set()
    params: set[str] = set()
    for block in _SIMPLE_BLOCK.finditer(source):
        match = _SIMPLE_EXPRESSION.fullmatch(block["inner"])
        if match is None or match["name"] in _JINJA_WORDS:
            return None
        filters = [f.strip() for f in match["filters"].split("|")[1:]]
        if any(f not in _ENV.filters for f in filters):
            return None
        names.add(match["name"])
        for i, accessor in enumerate(_ACCESSOR.finditer(match["accessors"])):
            key = next((k for k in accessor.group("attr", "sq", "dq") if k is not None), None)
            if key is None:
                continue
            if (key.startswith("_") or key in _UNSAFE_NAMES) and key not in internals:
                internals.append(key)
            if i == 0 and match["name"] == "tasks":
                tasks.add(key)
            elif i == 0 and match["name"] == "params":
                params.add(key)
    return _Analysis(None, tuple(internals), frozenset(tasks), frozenset(names), frozenset(params))


def _analyse_jinja(source: str) -> _Analysis:
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return _Analysis(syntax_error=f"line {exc.lineno}: {exc.message}")
    for used in tree.find_all(nodes.Filter):
        if used.name not in _ENV.filters:  # jinja only notices when compiling
            return _Analysis(syntax_error=f'line {used.lineno}: no filter named "{used.name}"')
    internals: list[str] = []
    tasks: set[str] = set()
    params: set[str] = set()
    # params.get('x') or params.items() call a method of the mapping: not a parameter.
    called = {id(call.node) for call in tree.find_all(nodes.Call)}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        key = _static_key(node)
        if key is None:
            continue
        if (key.startswith("_") or key in _UNSAFE_NAMES) and key not in internals:
            internals.append(key)
        target = getattr(node, "node", None)
        if isinstance(node, nodes.Filter) or not isinstance(target, nodes.Name):
            continue
        if target.name == "tasks":
            tasks.add(key)
        elif target.name == "params" and id(node) not in called:
            params.add(key)
    names = frozenset(jinja2.meta.find_undeclared_variables(tree))
    if "params" not in names:
        params.clear()  # "params" was assigned inside the template: not the run's parameters
    return _Analysis(None, tuple(internals), frozenset(tasks), names, frozenset(params))


def _static_key(node: nodes.Node) -> str | None:
    """The attribute or key a node reaches for, when it is known without rendering."""
    if isinstance(node, nodes.Getattr):
        return str(node.attr)
    if isinstance(node, nodes.Getitem):
        arg = node.arg
        return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        arg = node.args[0]
        return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every template string inside ``value``, depth first."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if is_template(item):
                yield where, item
        elif isinstance(item, Mapping):
            children = [(_key_path(where, key), child) for key, child in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([(f"{where}[{i}]", child) for i, child in enumerate(item)]))


_PLAIN_KEY = re.compile(r"^[A-Za-z_][\w-]*$")


def _key_path(path: str, key: object) -> str:
    if isinstance(key, str) and _PLAIN_KEY.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


@dataclass(frozen=True)
class TemplateInfo:
    """What static analysis learned about one template string inside a value."""

    path: str
    """Field path of the string, e.g. ``spec.tasks[1].args.symbol``."""
    tasks: frozenset[str]
    """Task names used as ``tasks['X']`` / ``tasks.X``."""
    names: frozenset[str]
    """Top-level variable names used (``params``, ``item``…)."""
    problems: tuple[Problem, ...]
    """Syntax errors and references to Python internals."""
    params: frozenset[str] = frozenset()
    """Parameter names used as ``params.X`` / ``params['X']`` (not ``params[x]``)."""


def inspect_templates(value: Any, path: str) -> Iterator[TemplateInfo]:
    """Analyse every template string inside ``value`` without rendering it.

    Args:
        value: a string, or a list/dict nesting strings (task ``args``, ``env``…).
        path: the field path of ``value`` in its document, e.g. ``spec.tasks[1].args``;
            strings inside nested values extend it (``spec.tasks[1].args.symbol``).
    """
    for where, text in _strings(value, path):
        analysis = _analyse(text)
        problems = [
            Problem(
                where,
                f'template reaches for Python internals ("{name}"); only '
                f"{', '.join(CONTEXT_NAMES[:-1])} and {CONTEXT_NAMES[-1]} are available",
            )
            for name in analysis.internals
        ]
        if analysis.syntax_error is not None:
            problems.append(Problem(where, f"template syntax error: {analysis.syntax_error}"))
        yield TemplateInfo(where, analysis.tasks, analysis.names, tuple(problems), analysis.params)


def template_problems(value: Any, path: str) -> list[Problem]:
    """Static problems (syntax, Python internals) of every template inside ``value``.

    See :func:`inspect_templates` for ``value`` and ``path``.
    """
    return [problem for info in inspect_templates(value, path) for problem in info.problems]


def referenced_tasks(value: Any) -> set[str]:
    """Names ``X`` used as ``tasks['X']``, ``tasks["X"]`` or ``tasks.X`` in any template."""
    return {name for info in inspect_templates(value, "") for name in info.tasks}


def referenced_params(value: Any) -> set[str]:
    """Names ``X`` used as ``params.X``, ``params['X']`` or ``params["X"]`` in any template.

    Dynamic lookups (``params[name]``) and method calls (``params.get('x')``)
    are not parameter names and are left out.
    """
    return {name for info in inspect_templates(value, "") for name in info.params}


def referenced_names(value: Any) -> set[str]:
    """Top-level variable names (``params``, ``item``…) used by any template in ``value``."""
    return {name for info in inspect_templates(value, "") for name in info.names}


# --------------------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=8192)
def _compile(text: str) -> Callable[[Mapping[str, Any]], Any]:
    match = _SINGLE_EXPRESSION.match(text)
    if match is not None:
        expression = _ENV.compile_expression(match["expr"], undefined_to_none=False)
        return lambda context: _native(expression(**context))
    template = _ENV.from_string(text)
    return template.render


def _native(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError here
    return value


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template string inside ``value`` against ``context``.

    Dicts and lists are rebuilt with their strings rendered; a string that is
    exactly one ``{{ expression }}`` becomes the expression's native value;
    other strings render to text; non-strings pass through unchanged.

    Raises:
        TemplateError: a template failed (undefined name, refused by the
            sandbox, or any exception while evaluating); the message names it.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            return _compile(value)(context)
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"template {value!r} was refused by the sandbox: {exc}") from exc
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"template {value!r}: {exc}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {value!r}: syntax error: {exc.message}") from exc
        except Exception as exc:
            raise TemplateError(f"template {value!r} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, Mapping):
        return {key: render(child, context) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [render(child, context) for child in value]
    return value
