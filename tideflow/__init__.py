"""Tideflow: a workflow engine for quantitative data pipelines."""

from typing import TYPE_CHECKING

from tideflow.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    PermanentError,
    TemporaryError,
    TideflowError,
    ValidationError,
)
from tideflow.model import TaskSpec, Workflow, WorkflowRun
from tideflow.version import __version__

if TYPE_CHECKING:  # the real types for type checkers; imported lazily at run time
    from tideflow.client import Client, connect
    from tideflow.definition.builder import WorkflowBuilder, workflow


def __getattr__(name: str) -> object:
    # The client pulls in SQLAlchemy and the builder Jinja and YAML; import them
    # only when asked for, so task processes that merely import tideflow stay light.
    if name in ("Client", "connect"):
        from tideflow import client

        return getattr(client, name)
    if name in ("WorkflowBuilder", "workflow"):
        from tideflow.definition import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'tideflow' has no attribute {name!r}")


__all__ = [  # noqa: RUF022 - grouped: client, errors, models, builder
    "Client",
    "connect",
    "ConflictError",
    "InvalidTransitionError",
    "NotFoundError",
    "PermanentError",
    "TaskSpec",
    "TemporaryError",
    "TideflowError",
    "ValidationError",
    "Workflow",
    "WorkflowRun",
    "WorkflowBuilder",
    "workflow",
    "__version__",
]
