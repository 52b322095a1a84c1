"""Semantic checks of manifests, after the models parsed them.

The model proves each field is well-formed on its own; this module proves the
workflow makes sense as a whole: task names are unique, dependencies exist and
form no cycle, templates only use what will exist when the task runs (its
upstream tasks, declared parameters, ``item`` only under ``forEach``),
parameter defaults and ``enum`` values fit the declared types, function
references import and accept their arguments, hooks name events the engine
emits (:class:`~tideflow.model.EventKind`). Every problem is reported, not
only the first.

Callers: the CLI (``validate``, ``apply``), the HTTP API, the builder, and the
engine for :func:`check_params` when a run is created. Cost stays linear in
the number of tasks: templates are parsed once per distinct string, and
transitive upstream sets are computed (as bitsets, in one pass) only when a
template uses a task that is not a direct dependency.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from tideflow.definition import functions, parameters, templating
from tideflow.definition.dag import Graph, find_cycle
from tideflow.errors import Problem, ValidationError, did_you_mean
from tideflow.model import (
    EVENT_NAMES,
    ExecutorKind,
    HookSpec,
    Manifest,
    ParamSpec,
    TaskSpec,
    Workflow,
    check_name,
)
from tideflow.model.collection import paused_collection
from tideflow.model.templated import may_have_templates, task_templates

__all__ = ["check", "check_params", "validate_workflow"]

_TASK_NAMES = frozenset(templating.CONTEXT_NAMES)
# Defaults are rendered before any parameter has a value, so they cannot use ``params``.
_PARAM_NAMES = frozenset({"run", "schedule"})
_FAN_OUT_NAMES = frozenset({"item", "index"})
_EVENT_NAMES = frozenset(EVENT_NAMES)
_NO_ARGS: frozenset[str] = frozenset()


def check(manifests: Sequence[tuple[str, Manifest]], *, resolve_functions: bool = True) -> None:
    """Validate parsed manifests, as a set (e.g. all documents of ``apply -f``).

    Besides each workflow's own checks, refuses the same object defined twice
    and checks the params of a ``WorkflowRun`` whose workflow is in the set.

    Raises:
        ValidationError: with every problem found.
    """
    workflows: dict[tuple[str, str], Workflow] = {}
    for _, manifest in manifests:
        if isinstance(manifest, Workflow):
            workflows.setdefault((manifest.metadata.namespace, manifest.metadata.name), manifest)
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str], str] = {}
    for source, manifest in manifests:
        meta = manifest.metadata
        key = (manifest.kind, meta.namespace, meta.name)
        if key in seen:
            problems.append(
                Problem(
                    "metadata.name",
                    f'{manifest.kind} "{meta.namespace}/{meta.name}" is defined twice '
                    f"(also in {seen[key] or 'an earlier document'})",
                    source,
                )
            )
            continue
        seen[key] = source
        if isinstance(manifest, Workflow):
            problems += validate_workflow(manifest, source, resolve_functions=resolve_functions)
            continue
        workflow = workflows.get((meta.namespace, manifest.spec.workflow_ref.name))
        if workflow is not None:
            try:
                check_params(workflow, manifest.spec.params, path="spec.params")
            except ValidationError as exc:
                problems += [dataclasses.replace(p, source=source) for p in exc.problems]
    if problems:
        raise ValidationError(problems)


def check_params(wf: Workflow, given: Mapping[str, Any], *, path: str = "") -> dict[str, Any]:
    """Merge run parameters over the workflow's defaults, converted to the declared types.

    Each value is converted by :func:`tideflow.definition.parameters.convert` (``"3"``
    becomes ``3`` for an ``integer`` parameter) and checked against the
    parameter's ``enum``. A value that is a template string (a default such
    as ``"{{ schedule.date }}"``) is returned as declared: the engine renders
    it, then converts the result (:func:`tideflow.engine.control.submit_run`).
    So is a default that does not fit its type: that is a problem of the
    workflow, which :func:`validate_workflow` reports and ``submit_run``
    refuses, not of the values given here.

    Args:
        wf: the workflow the run belongs to.
        given: parameter name -> value, as the caller got it (text from
            ``-p``, YAML/JSON values, Python values).
        path: where ``given`` lives in a document, e.g. ``spec.params``. When
            empty, problems are labelled the way the CLI takes them
            (``-p name``).

    Returns:
        Every declared parameter that has a value, in declaration order.

    Raises:
        ValidationError: every problem at once: unknown parameters (with
            suggestions), required parameters that were not given, and values
            that do not fit their type or ``enum``.
    """
    declared: dict[str, ParamSpec] = {}
    for param in wf.spec.params:
        declared.setdefault(param.name, param)  # a duplicate is reported by validate_workflow
    problems: list[Problem] = []
    for name in given:
        if name not in declared:
            known = ", ".join(declared) if declared else "none"
            hint = _suggest(name, list(declared))
            message = f'unknown parameter "{name}"{hint}; known: {known}'
            problems.append(Problem(parameters.value_path(name, path), message))
    merged: dict[str, Any] = {}
    for name, param in declared.items():
        if name in given:
            try:
                merged[name] = _converted(param, given[name])
            except parameters.ParameterValueError as exc:
                problems.append(Problem(parameters.value_path(name, path), str(exc)))
        elif param.required:
            problems.append(Problem(path, f'parameter "{name}" is required'))
        else:
            merged[name] = _default(param)
    if problems:
        raise ValidationError(problems)
    return merged


def _converted(param: ParamSpec, value: Any) -> Any:
    """``value`` converted to ``param``'s type, or as it is if it is a template."""
    return value if _is_template(value) else parameters.convert(param, value)


def _default(param: ParamSpec) -> Any:
    """The default converted to its type, or as declared if it does not fit."""
    try:
        return _converted(param, param.default)
    except parameters.ParameterValueError:
        return param.default


def validate_workflow(
    wf: Workflow, source: str = "", *, resolve_functions: bool = True
) -> list[Problem]:
    """Every semantic problem of one workflow; paths are relative to its document.

    Args:
        source: stamped on every problem (file name, document label).
        resolve_functions: import ``function`` references of local tasks and
            check their signatures against ``args``. Tasks with
            ``executor: kubernetes`` are never resolved: their code lives in
            the container image.
    """
    with paused_collection(len(wf.spec.tasks)):
        problems = _workflow_problems(wf, resolve_functions)
    return [dataclasses.replace(p, source=source) for p in problems]


def _workflow_problems(wf: Workflow, resolve_functions: bool) -> list[Problem]:
    declared = dict.fromkeys(param.name for param in wf.spec.params)  # ordered, O(1) lookups
    problems = _param_problems(wf, declared)
    problems += _hook_problems(wf.spec.hooks, "spec.hooks")
    tasks = wf.spec.tasks
    index = _task_index(tasks, problems)
    deps = _dependency_problems(tasks, index, problems)
    cycle = find_cycle(deps)
    if cycle is not None:
        problems.append(Problem("spec.tasks", f"dependency cycle: {' -> '.join(cycle)}"))
    upstream = _Upstream(deps, acyclic=cycle is None)
    signatures: dict[tuple[str, frozenset[str]], list[Problem]] = {}
    pools: dict[str, str | None] = {}
    # A task's paths ("spec.tasks[i]…") are formatted only when it has a problem:
    # per task of 100,000, formatting them all shows.
    for i, task in enumerate(tasks):
        problems += _template_problems(task, i, index, upstream, declared)
        if task.pool is not None:
            if task.pool not in pools:
                pools[task.pool] = _name_error(task.pool)
            error = pools[task.pool]
            if error is not None:
                problems.append(Problem(f"spec.tasks[{i}].pool", error))
        if task.hooks is not None:
            problems += _hook_problems(task.hooks, f"spec.tasks[{i}].hooks")
        if resolve_functions and task.executor is ExecutorKind.LOCAL:
            if task.function is not None:
                problems += _function_problems(task.function, task.args, i, "", signatures)
            if task.compensate is not None:
                problems += _function_problems(
                    task.compensate.function,
                    task.compensate.args,
                    i,
                    ".compensate",
                    signatures,
                )
    return problems


# --------------------------------------------------------------------------- parts


def _param_problems(wf: Workflow, declared: Collection[str]) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, param in enumerate(wf.spec.params):
        path = f"spec.params[{i}]"
        if param.name in first:
            problems.append(
                Problem(
                    f"{path}.name",
                    f'duplicate parameter "{param.name}" (first defined at '
                    f"spec.params[{first[param.name]}])",
                )
            )
        else:
            first[param.name] = i
        problems += _param_value_problems(param, path)
        for info in templating.inspect_templates(param.default, f"{path}.default"):
            problems += info.problems
            problems += _unknown_names(info.path, info.names, _PARAM_NAMES, "parameter defaults")
    return problems


def _param_value_problems(param: ParamSpec, path: str) -> list[Problem]:
    """``enum`` values and a non-template default that do not fit the declared type."""
    problems: list[Problem] = []
    for j, option in enumerate(param.enum or ()):
        try:
            parameters.convert_type(param, option)
        except parameters.ParameterValueError as exc:
            problems.append(Problem(f"{path}.enum[{j}]", str(exc)))
    if not _is_template(param.default):
        try:
            parameters.convert(param, param.default)
        except parameters.ParameterValueError as exc:
            problems.append(Problem(f"{path}.default", str(exc)))
    return problems


def _param_references(where: str, used: frozenset[str], declared: Collection[str]) -> list[Problem]:
    """A problem for each ``params.X`` a template uses that the workflow does not declare."""
    problems = []
    for name in sorted(n for n in used if n not in declared):
        spelled = f"params.{name}" if name.isidentifier() else f"params[{name!r}]"
        problems.append(
            Problem(
                where,
                f"template uses {spelled} but the workflow declares no parameter "
                f'"{name}"{_suggest(name, list(declared))}',
            )
        )
    return problems


def _is_template(value: Any) -> bool:
    """A template string: its value is only known once the engine renders it."""
    return isinstance(value, str) and templating.is_template(value)


def _task_index(tasks: Sequence[TaskSpec], problems: list[Problem]) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if task.name in index:
            problems.append(
                Problem(
                    f"spec.tasks[{i}].name",
                    f'duplicate task name "{task.name}" (first defined at '
                    f"spec.tasks[{index[task.name]}])",
                )
            )
        else:
            index[task.name] = i
    return index


def _dependency_problems(
    tasks: Sequence[TaskSpec], index: Mapping[str, int], problems: list[Problem]
) -> dict[str, list[str]]:
    """Report bad ``dependsOn`` entries; return the known, distinct dependencies per task."""
    deps: dict[str, list[str]] = {}
    names = list(index)
    for i, task in enumerate(tasks):
        if index[task.name] != i:
            continue  # a duplicate, already reported
        depends_on = task.depends_on
        # The common case first, with set operations and no path formatted (a join
        # may list 100,000 tasks); a valid task keeps its own list (read-only).
        if len(depends_on) < 2:
            valid = not depends_on or (depends_on[0] in index and depends_on[0] != task.name)
        else:
            unique = set(depends_on)
            valid = (
                len(unique) == len(depends_on)
                and task.name not in unique
                and index.keys() >= unique
            )
        if valid:
            deps[task.name] = depends_on
            continue
        known: dict[str, None] = {}  # ordered, with O(1) membership
        for j, dep in enumerate(depends_on):
            if dep in index and dep not in known and dep != task.name:
                known[dep] = None
                continue
            path = f"spec.tasks[{i}].dependsOn[{j}]"
            if dep == task.name:
                problems.append(Problem(path, f'task "{dep}" depends on itself'))
            elif dep not in index:
                problems.append(Problem(path, f'unknown task "{dep}"{_suggest(dep, names)}'))
            else:
                problems.append(Problem(path, f'"{dep}" is listed twice'))
        deps[task.name] = list(known)
    return deps


class _Upstream:
    """Answers "is A upstream of B?" in O(1) after one linear pass, computed lazily."""

    def __init__(self, deps: Mapping[str, Sequence[str]], *, acyclic: bool) -> None:
        self._edges = deps
        #: Direct dependencies as sets, built for the tasks asked about only.
        self._deps: dict[str, frozenset[str]] = {}
        self._acyclic = acyclic
        self._bits: dict[str, int] | None = None
        self._position: dict[str, int] = {}

    def contains(self, task: str, other: str) -> bool | None:
        """True/False, or None when a cycle makes the question meaningless."""
        direct = self._deps.get(task)
        if direct is None:
            direct = self._deps[task] = frozenset(self._edges.get(task, ()))
        if other in direct:
            return True
        if not self._acyclic:
            return None
        if self._bits is None:
            self._bits = self._ancestor_bits()
        if task not in self._bits or other not in self._position:
            return None
        return bool(self._bits[task] >> self._position[other] & 1)

    def _ancestor_bits(self) -> dict[str, int]:
        # Python ints as bitsets: one OR per edge, in topological order.
        graph = Graph.from_edges(self._edges.items())
        self._position = {name: i for i, name in enumerate(graph.order)}
        bits: dict[str, int] = {}
        for name in graph.order:
            mask = 0
            for dep in graph.upstream[name]:
                mask |= bits[dep] | (1 << self._position[dep])
            bits[name] = mask
        return bits


def _template_problems(
    task: TaskSpec,
    position: int,
    index: Mapping[str, int],
    upstream: _Upstream,
    declared: Collection[str],
) -> list[Problem]:
    if task.for_each is None and task.compensate is None and not may_have_templates(task):
        return []  # most tasks
    # The fields the engine renders into each attempt (the same list), when set.
    fields = [(field, value, "body") for field, value in task_templates(task) if value is not None]
    if task.for_each is not None:
        fields.append(("forEach", task.for_each, "forEach"))
    if task.compensate is not None and task.compensate.args is not None:
        fields.append(("compensate.args", task.compensate.args, "compensate"))
    if not fields:
        return []
    problems: list[Problem] = []
    path = f"spec.tasks[{position}]"
    if isinstance(task.for_each, str) and not templating.is_template(task.for_each):
        problems.append(
            Problem(
                f"{path}.forEach",
                'must be a list or a "{{ … }}" template that evaluates to one',
            )
        )
    for field, value, role in fields:
        for info in templating.inspect_templates(value, f"{path}.{field}"):
            problems += info.problems
            where, used_tasks, names = info.path, info.tasks, info.names
            problems += _unknown_names(where, names, _TASK_NAMES, "templates")
            problems += _param_references(where, info.params, declared)
            for name in sorted(names & _FAN_OUT_NAMES):
                if role == "forEach":
                    problems.append(Problem(where, f'"{name}" cannot be used in forEach itself'))
                elif task.for_each is None:
                    problems.append(
                        Problem(where, f'"{name}" is only defined in tasks with forEach')
                    )
            for used in sorted(used_tasks):
                problem = _task_reference(task.name, used, role, where, index, upstream)
                if problem is not None:
                    problems.append(problem)
    return problems


def _task_reference(
    task: str, used: str, role: str, where: str, index: Mapping[str, int], upstream: _Upstream
) -> Problem | None:
    if used not in index:
        hint = _suggest(used, list(index))
        return Problem(where, f"template uses tasks['{used}'] but there is no such task{hint}")
    if used == task:
        if role == "compensate":
            return None  # a compensation may undo what its own task produced
        return Problem(where, f"template uses the output of its own task (tasks['{used}'])")
    if upstream.contains(task, used) is False:
        return Problem(
            where,
            f"template uses tasks['{used}'] which is not upstream of \"{task}\"; "
            "add it to dependsOn",
        )
    return None


def _unknown_names(
    where: str, names: frozenset[str], allowed: frozenset[str], what: str
) -> list[Problem]:
    ordered = [n for n in templating.CONTEXT_NAMES if n in allowed]
    problems = []
    for name in sorted(names - allowed):
        hint = _suggest(name, ordered)
        problems.append(
            Problem(
                where,
                f'unknown variable "{name}"{hint}; {what} can use {", ".join(ordered)}',
            )
        )
    return problems


def _function_problems(
    ref: str,
    args: Mapping[str, Any] | None,
    position: int,
    field: str,
    cache: dict[tuple[str, frozenset[str]], list[Problem]],
) -> list[Problem]:
    """Problems of the function ``ref`` called with ``args``, for task number
    ``position``; ``field`` is where they are in the task ("" or ".compensate")."""
    key = (ref, frozenset(args) if args else _NO_ARGS)
    found = cache.get(key)
    if found is None:
        try:
            fn = functions.resolve(ref)
        except functions.FunctionError as exc:
            found = [Problem("\0function", str(exc))]
        else:
            found = functions.signature_problems(fn, set(key[1]), "")
        cache[key] = found
    if not found:
        return []
    function_path = f"spec.tasks[{position}]{field}.function"
    args_path = f"spec.tasks[{position}]{field}.args"
    return [
        dataclasses.replace(p, path=function_path if p.path == "\0function" else args_path + p.path)
        for p in found
    ]


def _hook_problems(hooks: Sequence[HookSpec] | None, path: str) -> list[Problem]:
    """Events in ``hooks[].on`` that the engine never emits, or that are listed twice."""
    problems: list[Problem] = []
    for i, hook in enumerate(hooks or ()):
        seen: set[str] = set()
        for j, event in enumerate(hook.on):
            where = f"{path}[{i}].on[{j}]"
            if event not in _EVENT_NAMES:
                hint = _suggest(event, list(EVENT_NAMES)) or f"; known: {', '.join(EVENT_NAMES)}"
                problems.append(Problem(where, f'unknown event "{event}"{hint}'))
            elif event in seen:
                problems.append(Problem(where, f'"{event}" is listed twice'))
            seen.add(event)
    return problems


def _name_error(name: str) -> str | None:
    try:
        check_name(name)
    except ValueError as exc:
        return str(exc)
    return None


_suggest = did_you_mean
