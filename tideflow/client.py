"""The Python front door: the CLI's verbs as methods, for notebooks, tests and scripts.

Example::

    import tideflow

    flow = (tideflow.workflow("daily-factors")
            .task("list-symbols", function="examples.quant:list_symbols",
                  args={"date": "2026-11-30"})
            .build())
    with tideflow.connect("sqlite:///tideflow.db") as tf:
        run = tf.run(flow, wait=True)
        print(run.phase, tf.tasks(run.name))

Like the CLI, control methods only write the run's desired state; the engine
that owns the run (this process while ``wait`` drives it, or a
``tideflow server``) converges to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from tideflow.config import Settings, load_settings
from tideflow.engine.ports import ApplyResult, LogRecord, RunRecord, Store, TaskRecord
from tideflow.model import Workflow, WorkflowRunStatus
from tideflow.service import Services


class Client:
    """A connection to one Tideflow database, in one namespace.

    The verbs are :class:`~tideflow.service.Services`' (the command line's too),
    bound to this client's namespace.
    """

    def __init__(self, settings: Settings, *, namespace: str = "default") -> None:
        self.settings = settings
        self.namespace = namespace
        self.services = Services.open(settings)
        self.store: Store = self.services.store

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.services.close()

    def apply(self, workflow: Workflow) -> ApplyResult:
        """Create or update a workflow: ``created``, ``configured`` or ``unchanged``."""
        return self.services.apply(workflow)

    def run(
        self,
        workflow: Workflow | str,
        params: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        wait: bool = False,
    ) -> RunRecord:
        """Start a run (of a workflow object, applied first, or of an applied one by name).

        With ``wait`` the run is executed in this process and its final record
        returned; otherwise it is recorded for a ``tideflow server``.
        """
        if not isinstance(workflow, str):
            self.apply(workflow)
        record = self.services.submit(self.namespace, workflow, params, name=name)
        return self.wait(record.name) if wait else record

    def wait(self, run: str) -> RunRecord:
        """Drive (or follow, if another engine owns it) a run to its end."""
        return self.services.wait(self.namespace, run)

    def get(self, run: str) -> RunRecord:
        return self.services.get(self.namespace, run)

    def status(self, run: str) -> WorkflowRunStatus:
        """The run's status, as ``get run`` shows it: phase, ``Ready`` condition,
        task counts, times, and ``observed_generation`` (equal to the run's
        generation once the engine has acted on its latest control request)."""
        return self.services.status(self.namespace, run)

    def runs(self, workflow: str | None = None) -> list[RunRecord]:
        return self.services.runs(self.namespace, workflow)

    def tasks(self, run: str) -> list[TaskRecord]:
        return self.services.tasks(self.namespace, run)

    def logs(self, run: str, task: str | None = None) -> list[LogRecord]:
        return self.services.logs(self.namespace, run, task)

    def pause(self, run: str) -> None:
        self.services.control(self.namespace, run, "pause")

    def resume(self, run: str) -> None:
        self.services.control(self.namespace, run, "resume")

    def terminate(self, run: str) -> None:
        self.services.control(self.namespace, run, "terminate")

    def delete(self, run: str, *, force: bool = False) -> None:
        """Delete a finished run (``force``: terminate it first) with its tasks and logs."""
        self.services.delete(self.namespace, run, force=force)

    def delete_workflow(self, name: str) -> None:
        """Delete a workflow; its runs keep their own snapshots of it."""
        self.services.delete_workflow(self.namespace, name)

    def retry(self, run: str, *, wait: bool = False) -> RunRecord:
        """Re-run the failed, upstream-failed and terminated tasks of a finished run."""
        retried = self.services.control(self.namespace, run, "retry")
        return self.wait(run) if wait else retried


def connect(
    database_url: str | None = None, *, config_file: str | None = None, namespace: str = "default"
) -> Client:
    """Open a :class:`Client` on ``database_url`` (default: settings, then ``sqlite:///tideflow.db``)."""
    return Client(load_settings(config_file, database_url=database_url), namespace=namespace)
