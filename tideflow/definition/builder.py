"""Fluent Python builder for workflows: the code front door to the same ``Workflow`` model.

Example::

    wf = (
        tideflow.workflow("daily-bars", namespace="quant")
        .param("trade_date", default="2026-11-30", type="date")
        .param("universe_size", default=60, type="integer")
        .retry(limit=2, backoff_seconds=5)          # no task yet: workflow-level
        .task("list-symbols", function=list_symbols)
        .task("fetch-bars", function="examples.quant:fetch_bars", args={"symbol": "{{ item }}"})
        .depends_on("list-symbols")
        .for_each("{{ tasks['list-symbols'].output }}")
        .retry(limit=3)                             # after .task(): applies to fetch-bars
        .build()
    )

The builder only collects the manifest as plain data (camelCase keys, exactly
what a YAML file would hold); :meth:`WorkflowBuilder.build` parses it through
:func:`~tideflow.definition.loading.parse_manifest` and
:func:`~tideflow.definition.validation.validate_workflow`, so a built workflow
equals the one read from the equivalent YAML and is refused with the same messages.

``retry`` and ``timeout`` are modal: before the first ``task()`` they set the
workflow's policy and run deadline, afterwards the current task's. Use
``workflow_retry`` / ``workflow_timeout`` to set the workflow's at any point.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tideflow.definition.functions import reference_of
from tideflow.definition.loading import parse_manifest
from tideflow.definition.validation import validate_workflow
from tideflow.errors import ValidationError
from tideflow.model import API_VERSION, ParamType, TriggerRule, Workflow

__all__ = ["WorkflowBuilder"]

_UNSET: Any = object()

FunctionLike = str | Callable[..., Any]


class WorkflowBuilder:
    """Collects a ``Workflow`` step by step; :meth:`build` validates and returns it."""

    def __init__(self, name: str, namespace: str = "default") -> None:
        self._metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        self._spec: dict[str, Any] = {}
        self._tasks: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ workflow level

    def description(self, text: str) -> WorkflowBuilder:
        self._spec["description"] = text
        return self

    def label(self, key: str, value: str) -> WorkflowBuilder:
        self._metadata.setdefault("labels", {})[key] = value
        return self

    def param(
        self,
        name: str,
        default: Any = _UNSET,
        *,
        type: str | ParamType | None = None,
        enum: Sequence[Any] | None = None,
        required: bool | None = None,
        description: str | None = None,
    ) -> WorkflowBuilder:
        """Declare a run parameter, as ``spec.params`` does in YAML.

        Args:
            name: the parameter's name (``params.NAME`` in templates).
            default: its value when a run does not give one; without it the
                parameter is required.
            type: ``string`` (the default), ``integer``, ``number``,
                ``boolean``, ``date``, ``datetime``, ``array`` or ``object``;
                values given to a run are converted to it.
            enum: the allowed values.
            required: whether a run must give a value (default: when there
                is no ``default``).
            description: what the parameter means.
        """
        param: dict[str, Any] = {"name": name}
        if type is not None:
            param["type"] = str(type)
        if default is not _UNSET:
            param["default"] = _copy(default)
        if enum is not None:
            param["enum"] = list(_copy(enum))
        if required is not None:
            param["required"] = required
        if description is not None:
            param["description"] = description
        self._spec.setdefault("params", []).append(param)
        return self

    def parallelism(self, limit: int) -> WorkflowBuilder:
        self._spec["parallelism"] = limit
        return self

    def saga(self, enabled: bool = True) -> WorkflowBuilder:
        self._spec["saga"] = enabled
        return self

    def schedule(
        self,
        cron: str,
        *,
        timezone: str | None = None,
        calendar: str | None = None,
        concurrency_policy: str | None = None,
        catchup_max_runs: int | None = None,
        suspend: bool | None = None,
    ) -> WorkflowBuilder:
        schedule = _drop_none(
            cron=cron,
            timezone=timezone,
            calendar=calendar,
            concurrencyPolicy=concurrency_policy,
            suspend=suspend,
        )
        if catchup_max_runs is not None:
            schedule["catchup"] = {"enabled": True, "maxRuns": catchup_max_runs}
        self._spec["schedule"] = schedule
        return self

    def workflow_retry(
        self,
        limit: int,
        *,
        backoff_seconds: float | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
    ) -> WorkflowBuilder:
        """The default retry policy of every task of the workflow."""
        self._spec["retry"] = _retry(limit, backoff_seconds, backoff_factor, backoff_max_seconds)
        return self

    def workflow_timeout(self, seconds: float) -> WorkflowBuilder:
        """The run deadline."""
        self._spec["timeoutSeconds"] = seconds
        return self

    def hook(
        self, on: Sequence[str], plugin: str, with_: Mapping[str, Any] | None = None
    ) -> WorkflowBuilder:
        """Bind a plugin to events: of the current task if there is one, else of the workflow."""
        hook = _drop_none(on=list(on), plugin=plugin, **{"with": _copy(with_)})
        target = self._tasks[-1] if self._tasks else self._spec
        target.setdefault("hooks", []).append(hook)
        return self

    # ------------------------------------------------------------------ tasks

    def task(
        self,
        name: str,
        *,
        function: FunctionLike | None = None,
        command: Sequence[str] | None = None,
        container: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        depends_on: Sequence[str] = (),
        for_each: str | Sequence[Any] | None = None,
        executor: str | None = None,
    ) -> WorkflowBuilder:
        """Start a new task; the task-level calls that follow apply to it."""
        task: dict[str, Any] = {"name": name}
        self._tasks.append(task)
        if depends_on:
            self.depends_on(*depends_on)
        if function is not None:
            task["function"] = _function_ref(function)
        if command is not None:
            task["command"] = list(command)
        if container is not None:
            task["container"] = _copy(container)
        if executor is not None:
            task["executor"] = executor
        if args is not None:
            self.args(args)
        if for_each is not None:
            self.for_each(for_each)
        return self

    def depends_on(self, *names: str) -> WorkflowBuilder:
        self._current("depends_on").setdefault("dependsOn", []).extend(names)
        return self

    def args(self, mapping: Mapping[str, Any] | None = None, /, **kwargs: Any) -> WorkflowBuilder:
        """Add keyword arguments of the current task (merged with earlier ones)."""
        self._current("args").setdefault("args", {}).update(_copy({**(mapping or {}), **kwargs}))
        return self

    def for_each(self, items: str | Sequence[Any]) -> WorkflowBuilder:
        """Fan the current task out: a template evaluating to a list, or a literal list."""
        task = self._current("for_each")
        task["forEach"] = items if isinstance(items, str) else list(_copy(items))
        return self

    def env(self, **variables: str) -> WorkflowBuilder:
        self._current("env").setdefault("env", {}).update(variables)
        return self

    def working_dir(self, path: str) -> WorkflowBuilder:
        self._current("working_dir")["workingDir"] = path
        return self

    def executor(self, kind: str) -> WorkflowBuilder:
        self._current("executor")["executor"] = kind
        return self

    def isolation(self, kind: str) -> WorkflowBuilder:
        self._current("isolation")["isolation"] = kind
        return self

    def pool(self, name: str) -> WorkflowBuilder:
        self._current("pool")["pool"] = name
        return self

    def trigger_rule(self, rule: str | TriggerRule) -> WorkflowBuilder:
        self._current("trigger_rule")["triggerRule"] = str(rule)
        return self

    def compensate(
        self, function: FunctionLike, args: Mapping[str, Any] | None = None
    ) -> WorkflowBuilder:
        """The function that undoes the current task when a saga rolls back."""
        compensate = _drop_none(function=_function_ref(function), args=_copy(args))
        self._current("compensate")["compensate"] = compensate
        return self

    def timeout(self, seconds: float) -> WorkflowBuilder:
        """The current task's timeout, or the run deadline before the first task."""
        if not self._tasks:
            return self.workflow_timeout(seconds)
        self._tasks[-1]["timeoutSeconds"] = seconds
        return self

    def retry(
        self,
        limit: int,
        *,
        backoff_seconds: float | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: float | None = None,
    ) -> WorkflowBuilder:
        """The current task's retry policy, or the workflow's before the first task."""
        policy = _retry(limit, backoff_seconds, backoff_factor, backoff_max_seconds)
        if not self._tasks:
            self._spec["retry"] = policy
        else:
            self._tasks[-1]["retry"] = policy
        return self

    # ------------------------------------------------------------------ result

    def document(self) -> dict[str, Any]:
        """The manifest as plain data, exactly as it would appear in YAML."""
        return {
            "apiVersion": API_VERSION,
            "kind": "Workflow",
            "metadata": copy.deepcopy(self._metadata),
            "spec": {**copy.deepcopy(self._spec), "tasks": copy.deepcopy(self._tasks)},
        }

    def build(self, *, resolve_functions: bool = True) -> Workflow:
        """Validate and return the workflow.

        Args:
            resolve_functions: import function references of local tasks and check
                their signatures (default, as ``tideflow validate`` does). Pass
                False when the functions only exist where the tasks will run.

        Raises:
            ValidationError: every problem, with the same paths and messages as
                for the equivalent YAML.
        """
        source = f"workflow {self._metadata['name']}"
        workflow = parse_manifest(self.document(), source)
        assert isinstance(workflow, Workflow)  # the document says kind: Workflow
        problems = validate_workflow(workflow, source, resolve_functions=resolve_functions)
        if problems:
            raise ValidationError(problems)
        return workflow

    def _current(self, method: str) -> dict[str, Any]:
        if not self._tasks:
            raise TypeError(f"{method}() applies to a task: call .task(name, …) first")
        return self._tasks[-1]


def workflow(name: str, namespace: str = "default") -> WorkflowBuilder:
    """Start a fluent builder for the workflow ``namespace/name``."""
    return WorkflowBuilder(name, namespace=namespace)


def _function_ref(function: FunctionLike) -> str:
    return function if isinstance(function, str) else reference_of(function)


def _retry(
    limit: int, seconds: float | None, factor: float | None, max_seconds: float | None
) -> dict[str, Any]:
    policy: dict[str, Any] = {"limit": limit}
    backoff = _drop_none(seconds=seconds, factor=factor, maxSeconds=max_seconds)
    if backoff:
        policy["backoff"] = backoff
    return policy


def _drop_none(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _copy(value: Any) -> Any:
    # The builder keeps its own copy: mutating a dict after passing it changes nothing.
    return copy.deepcopy(value)
