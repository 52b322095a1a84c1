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


def __getattr__(name: str) -> object:
    # The client pulls in SQLAlchemy; import it only when asked for, so task
    # processes that merely import tideflow stay light.
    if name in ("Client", "connect"):
        from tideflow import client

        return getattr(client, name)
    raise AttributeError(f"module 'tideflow' has no attribute {name!r}")


__all__ = [  # noqa: RUF022 - grouped: errors, models, client
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
    "__version__",
]
