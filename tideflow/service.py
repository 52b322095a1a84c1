"""The front doors' one service layer: wiring and the verbs they share.

The command line, the Python client (and later the operator and the HTTP
API) parse their input and render their output; everything between — the
store opened from the settings (migrated first when
``database.autoMigrate``), the engine with its routing executor, and the
verbs (apply, submit, control, get, status, tasks, runs, logs, delete,
wait) — is here, once, so they behave the same everywhere.

Verbs take the namespace explicitly: a front door may serve several (the
operator, the API). Example::

    services = Services.open(load_settings(None, database_url="sqlite:///tideflow.db"))
    try:
        record = services.submit("default", "daily-factors", {"n": 3})
        final = services.wait("default", record.name)
    finally:
        services.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tideflow.config import Settings
from tideflow.engine import control, resources, status
from tideflow.engine.ports import ApplyResult, LogRecord, RunRecord, Store, TaskRecord
from tideflow.engine.reconciler import Engine
from tideflow.engine.transitions import Action
from tideflow.executors.routing import engine_executor
from tideflow.model import Workflow, WorkflowRun, WorkflowRunStatus

__all__ = ["Services", "build_engine", "open_store"]


def open_store(settings: Settings) -> Store:
    """The database of ``settings``, migrated to the latest schema if ``autoMigrate``."""
    from tideflow.storage.store import SqlStore  # SQLAlchemy only when a command needs it

    store = SqlStore.from_url(settings.database.url)
    if settings.database.auto_migrate:
        try:
            store.upgrade()
        except BaseException:
            store.close()
            raise
    return store


def build_engine(store: Store, settings: Settings) -> Engine:
    """An engine on ``store`` whose executor routes each task by its ``executor:`` kind.

    Each engine gets its own executor, which it closes when it stops.
    """
    return Engine(
        store, engine_executor(threads=settings.executor_threads()), settings.engine_settings()
    )


class Services:
    """Settings, the store and the verbs on them, for one front door.

    Args:
        settings: The loaded settings.
        store: The store to use; opened from ``settings`` by :meth:`open`.
    """

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    @classmethod
    def open(cls, settings: Settings) -> Services:
        """Open the store of ``settings`` (see :func:`open_store`)."""
        return cls(settings, open_store(settings))

    def close(self) -> None:
        """Close the store (a store without ``close``, like a test's, is left as is)."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def engine(self) -> Engine:
        """A new engine on this store (to drive a run, or to serve)."""
        return build_engine(self.store, self.settings)

    # -- workflows -------------------------------------------------------------------

    def apply(self, workflow: Workflow) -> ApplyResult:
        """Create or update a workflow: ``created``, ``configured`` or ``unchanged``."""
        return self.store.apply_workflow(workflow)

    def apply_run(self, manifest: WorkflowRun) -> ApplyResult:
        """Create a run from a manifest, or converge it to the manifest's desired state."""
        return resources.apply_run(self.store, manifest)

    def workflow(self, namespace: str, name: str) -> Workflow:
        """The applied workflow ``name``."""
        return self.store.get_workflow(namespace, name).workflow

    def delete_workflow(self, namespace: str, name: str) -> None:
        """Delete a workflow; its runs keep their own snapshots of it."""
        self.store.delete_workflow(namespace, name)

    # -- runs ------------------------------------------------------------------------

    def submit(
        self,
        namespace: str,
        workflow: Workflow | str,
        params: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
    ) -> RunRecord:
        """Record a new run for an engine to execute.

        Args:
            namespace: Where an applied workflow named by ``workflow`` lives
                (a ``Workflow`` object carries its own namespace).
            workflow: The name of an applied workflow, or a workflow object,
                which is used as given (apply it first to keep it).
            params: Run parameters, converted to their declared types.
            name: The run's name (default: generated).
        """
        definition = self.workflow(namespace, workflow) if isinstance(workflow, str) else workflow
        return control.submit_run(self.store, definition, params, name=name)

    def control(self, namespace: str, name: str, action: Action) -> RunRecord:
        """Request ``pause``, ``resume``, ``terminate`` or ``retry``; returns the run
        as read after the request (Terminated already if no engine owned it)."""
        control.request(self.store, namespace, name, action)
        return self.store.get_run(namespace, name)

    def get(self, namespace: str, name: str) -> RunRecord:
        return self.store.get_run(namespace, name)

    def status(self, namespace: str, name: str) -> WorkflowRunStatus:
        """The run's status, as ``get run`` shows it."""
        record = self.get(namespace, name)
        return status.run_status(record, self.store.list_tasks(record.id))

    def runs(self, namespace: str, workflow: str | None = None) -> list[RunRecord]:
        return self.store.list_runs(namespace, workflow)

    def tasks(self, namespace: str, run: str) -> list[TaskRecord]:
        return self.store.list_tasks(self.get(namespace, run).id)

    def logs(self, namespace: str, run: str, task: str | None = None) -> list[LogRecord]:
        return self.store.get_logs(self.get(namespace, run).id, task)

    def delete(self, namespace: str, name: str, *, force: bool = False) -> None:
        """Delete a finished run (``force``: terminate it first) with its tasks and logs."""
        resources.delete_run(self.store, namespace, name, force=force)

    def wait(self, namespace: str, name: str) -> RunRecord:
        """Drive (or follow, if another engine owns it) a run to its end; its final record.

        Runs an event loop: call it where none runs (the command line's
        ``--wait`` drives the engine itself, to render progress and stop on
        signals: see :meth:`engine`).
        """
        record = self.get(namespace, name)
        return asyncio.run(self.engine().drive(record.id))
