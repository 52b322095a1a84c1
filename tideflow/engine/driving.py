"""What the engine's entry points take and give back: settings, events, drive results.

Kept apart from :mod:`tideflow.engine.reconciler` (which re-exports them) so
that the loop itself stays one readable module, and so that front doors and
:mod:`tideflow.engine.control` can name these without the loop's machinery.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from tideflow.engine.ports import EventRecord, RunRecord
from tideflow.model import EventKind, TaskCounts


@dataclass(frozen=True)
class EngineSettings:
    """Knobs of one engine process."""

    #: Attempts this engine runs at once, across all runs.
    slots: int = 64
    #: Named pools shared by all runs on this engine: name -> capacity.
    pools: dict[str, int] = field(default_factory=dict)
    #: How long a claimed run stays ours without renewal. Renewed every third of it.
    lease_seconds: float = 30.0
    #: How often desired-state changes and new runs are polled for.
    poll_seconds: float = 1.0
    #: Runs claimed per poll (server mode).
    claim_batch: int = 16
    #: On shutdown, how long running attempts may take to finish before they are cancelled.
    shutdown_grace_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class Event:
    """Emitted after the transition it reports is committed (the seam for plugins).

    ``kind`` is one of :class:`~tideflow.model.EventKind` (``TaskFailed``,
    ``RunPaused``…). For task events ``attempt`` and ``error`` are the task
    instance's at the time of the event, so a listener can report a failure
    without reading the database. ``counts`` are the run's task counts after
    the commit (as its status shows them); ``payload`` is the event record's
    (see :class:`~tideflow.engine.ports.EventRecord`).
    """

    kind: EventKind
    run: str
    run_id: int
    task: str | None
    at: datetime
    counts: TaskCounts | None = None
    attempt: int | None = None
    error: str | None = None
    namespace: str = "default"
    workflow: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, record: EventRecord, counts: TaskCounts | None = None) -> Event:
        """The listener's view of a committed event record."""
        error = record.payload.get("error")
        return cls(
            kind=record.kind,
            run=record.run,
            run_id=record.run_id,
            task=record.task,
            at=record.at,
            counts=counts,
            attempt=record.attempt,
            error=error if isinstance(error, str) else None,
            namespace=record.namespace,
            workflow=record.workflow,
            payload=record.payload,
        )


class Ending(StrEnum):
    """How :meth:`Engine.drive_until <tideflow.engine.reconciler.Engine.drive_until>` ended."""

    #: The run reached a final phase (Succeeded, Failed or Terminated).
    FINISHED = "finished"
    #: Stopped while this engine owned the run: it was handed back, unowned, for
    #: any engine to continue at once.
    HANDED_BACK = "handed-back"
    #: Stopped while another engine owned the run (or before this one claimed
    #: it): this engine only stopped following it.
    STOPPED_FOLLOWING = "stopped-following"


@dataclass(frozen=True, slots=True)
class Driven:
    """The result of driving a run: its record as last read, and how driving ended."""

    record: RunRecord
    ending: Ending


def new_owner_id() -> str:
    """A lease owner id that no other engine (or control request) uses: host, pid, random."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
