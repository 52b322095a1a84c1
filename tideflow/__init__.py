"""Tideflow: a workflow engine for quantitative data pipelines."""

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

__version__ = "0.1.0"

__all__ = [
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
