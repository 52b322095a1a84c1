"""Which fields of a task hold ``{{ … }}`` templates: one list for validation and the engine.

Validation checks these fields statically and the engine renders these same
fields into each attempt, so a field listed here can never be checked as a
template and then reach an executor unrendered (or the other way round).
``forEach`` and ``compensate.args`` are not listed: they are rendered at other
moments (fan-out, compensation) with other rules, by their own callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tideflow.model.manifests import TaskSpec

__all__ = ["may_have_templates", "task_templates"]


def task_templates(task: TaskSpec) -> Iterator[tuple[str, Any]]:
    """The templated fields of ``task``'s body, as (manifest path, raw value).

    Unset fields are yielded as None; ``container.*`` fields are left out
    when the task has no container.

    Args:
        task: The task's spec, as parsed from its manifest.

    Yields:
        The field's path relative to the task (``workingDir``,
        ``container.args``) and its value as written in the manifest.
    """
    yield "args", task.args
    yield "command", task.command
    yield "env", task.env
    yield "workingDir", task.working_dir
    if task.container is not None:
        yield "container.command", task.container.command
        yield "container.args", task.container.args
        yield "container.env", task.container.env


def may_have_templates(task: TaskSpec) -> bool:
    """False when :func:`task_templates` would yield only None: a check that costs
    a few attribute reads, for callers that go through 100,000 tasks."""
    return (
        task.args is not None
        or task.command is not None
        or task.env is not None
        or task.working_dir is not None
        or task.container is not None
    )
