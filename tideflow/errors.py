"""Tideflow's exception hierarchy.

Errors are split by what the caller does next, so the CLI (and later the HTTP
API) can map each class to one exit status / HTTP status in one place:

* :class:`ValidationError` — the input is wrong; fix it and try again (exit 2).
* :class:`NotFoundError` — the named object does not exist (exit 2).
* :class:`ConflictError` — the object exists in a state that forbids the request.
* :class:`InvalidTransitionError` — the run state machine refuses the request.
* :class:`TemporaryError` / :class:`PermanentError` — raised by task code to
  say whether a failed attempt is worth retrying.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


class TideflowError(Exception):
    """Something went wrong inside Tideflow."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (document and field path) and what."""

    path: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.path) if part)
        return f"{where}: {self.message}" if where else self.message


class ValidationError(TideflowError):
    """The input is invalid; every problem found is listed, not only the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class TemplateError(TideflowError):
    """A template could not be rendered (undefined name, sandbox violation, error inside)."""


class FunctionError(TideflowError):
    """A function reference cannot be resolved to a callable."""


class NotFoundError(TideflowError):
    """The requested object does not exist."""


class ConflictError(TideflowError):
    """The object exists but its current state conflicts with the request."""


class InvalidTransitionError(ConflictError):
    """The run state machine forbids the requested control action."""


class StorageError(TideflowError):
    """The database refused or failed an operation."""


class TaskError(TideflowError):
    """Base for errors raised by task code to steer retries."""


class PermanentError(TaskError):
    """The task failed in a way retrying cannot fix: no further attempts are made."""


class TemporaryError(TaskError):
    """The task failed transiently; retry (within the retry limit) after ``delay`` seconds."""

    def __init__(self, message: str = "", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


def did_you_mean(name: str, candidates: Iterable[str], *, cutoff: float = 0.7) -> str:
    """`` (did you mean "X"?)`` for the candidate closest to ``name``, or ``""``.

    Every "did you mean" in Tideflow's messages (unknown fields, tasks,
    parameters, functions, commands) is worded by this one function.
    """
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return f' (did you mean "{close[0]}"?)' if close else ""
