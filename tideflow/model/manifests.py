"""Pydantic models of the user-facing manifests: ``Workflow`` and ``WorkflowRun``.

These models are the single source of truth for the manifest format: the YAML
loader, the Python builder, the storage layer and (later) the CRDs all go
through them. Field names follow Kubernetes conventions (camelCase in YAML,
snake_case in Python).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from tideflow.model.collection import paused_collection
from tideflow.model.phases import DesiredState, RunPhase

API_VERSION: Final = "tideflow.dev/v1alpha1"

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_FUNCTION_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_name(value: str) -> str:
    """Validate a Kubernetes-style (DNS-1123 label) name."""
    if len(value) > 63:
        raise ValueError(f"name {value!r} is longer than 63 characters")
    if not _DNS1123.match(value):
        raise ValueError(
            f"invalid name {value!r}: use lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


Name = Annotated[str, Field(min_length=1)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class TriggerRule(StrEnum):
    """When a task runs, given the outcomes of the tasks it depends on."""

    ALL_SUCCESS = "allSuccess"
    ALL_DONE = "allDone"
    ANY_FAILED = "anyFailed"
    ANY_SUCCESS = "anySuccess"


class Isolation(StrEnum):
    """Where a synchronous Python function runs."""

    THREAD = "thread"
    PROCESS = "process"


class ExecutorKind(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


class Backoff(_Model):
    """Exponential backoff between attempts: ``seconds * factor ** (attempt - 1)``, capped."""

    seconds: PositiveSeconds = 1.0
    factor: float = Field(default=2.0, ge=1.0)
    max_seconds: PositiveSeconds = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_seconds, self.seconds * self.factor ** max(0, attempt - 1)))


class RetryPolicy(_Model):
    """How often a failed task is attempted again. ``limit: 0`` means never."""

    limit: int = Field(default=0, ge=0)
    backoff: Backoff = Backoff()


class ContainerSpec(_Model):
    image: Name
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] | None = None


class CompensateSpec(_Model):
    function: str
    args: dict[str, Any] | None = None


class HookSpec(_Model):
    """A plugin bound to events of the workflow's runs (or of one task).

    ``on`` lists :class:`~tideflow.model.EventKind` names (``RunFailed``,
    ``TaskRetrying``…). The model accepts any string, so a stored workflow
    always loads; :mod:`tideflow.definition.validation` refuses unknown names, with the
    field path and a suggestion.
    """

    on: list[str] = Field(min_length=1)
    plugin: Name
    with_: dict[str, Any] | None = Field(default=None, alias="with")


class TaskSpec(_Model):
    """One node of the DAG. Exactly one of ``function``, ``command`` or ``container``."""

    name: str
    depends_on: list[str] = Field(default_factory=list)
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    function: str | None = None
    command: list[str] | None = None
    container: ContainerSpec | None = None
    executor: ExecutorKind = ExecutorKind.LOCAL
    isolation: Isolation = Isolation.THREAD
    args: dict[str, Any] | None = None
    env: dict[str, str] | None = None
    working_dir: str | None = None
    for_each: str | list[Any] | None = None
    timeout_seconds: PositiveSeconds | None = None
    retry: RetryPolicy | None = None
    pool: str | None = None
    compensate: CompensateSpec | None = None
    hooks: list[HookSpec] | None = None

    _check_name = field_validator("name")(check_name)

    @field_validator("function")
    @classmethod
    def _function_ref(cls, value: str | None) -> str | None:
        if value is not None and not _FUNCTION_REF.match(value):
            raise ValueError(
                f"function reference {value!r} must look like 'package.module:attribute'"
            )
        return value

    @field_validator("command")
    @classmethod
    def _command_argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("command must be a non-empty argv list")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> TaskSpec:
        # Runs once per task (100,000 in a large fan-out): the common case costs three tests.
        if self.function is not None and self.command is None and self.container is None:
            return self
        kinds = [k for k in ("function", "command", "container") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a task needs exactly one of function, command or container (found: {found})"
            )
        if self.container is not None and self.executor is not ExecutorKind.KUBERNETES:
            raise ValueError("container tasks need executor: kubernetes")
        return self


class ParamType(StrEnum):
    """The type of a run parameter's value.

    Values stay JSON-compatible because run parameters are stored as JSON:
    ``date`` and ``datetime`` values are ISO 8601 strings, checked and
    normalised by :mod:`tideflow.definition.parameters`.
    """

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    ARRAY = "array"
    OBJECT = "object"


class ParamSpec(_Model):
    """A run parameter: its name, type, default, allowed values and description.

    The model only checks the shape of the declaration; whether ``default``
    and ``enum`` fit ``type`` is checked by :mod:`tideflow.definition.validation` (so a
    stored workflow always loads, and the problems are reported together
    with every other problem of the workflow).
    """

    name: str
    type: ParamType = ParamType.STRING
    default: Any = None
    required: bool = False
    description: str | None = None
    enum: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _required_without_default(cls, data: Any) -> Any:
        # A parameter declared without a default must be given at run time.
        if isinstance(data, dict) and "default" not in data and "required" not in data:
            return {**data, "required": True}
        return data


class CatchupSpec(_Model):
    enabled: bool = False
    max_runs: int = Field(default=1, gt=0)


class ScheduleSpec(_Model):
    """Accepted and stored; schedules are executed by a later component."""

    cron: str
    timezone: str = "UTC"
    calendar: str | None = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    catchup: CatchupSpec | None = None
    suspend: bool = False


class WorkflowSpec(_Model):
    description: str | None = None
    params: list[ParamSpec] = Field(default_factory=list)
    schedule: ScheduleSpec | None = None
    parallelism: int | None = Field(default=None, gt=0)
    timeout_seconds: PositiveSeconds | None = None
    retry: RetryPolicy | None = None
    saga: bool = False
    hooks: list[HookSpec] | None = None
    tasks: list[TaskSpec] = Field(min_length=1)

    @model_validator(mode="wrap")
    @classmethod
    def _large_without_collections(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        tasks = data.get("tasks") if isinstance(data, dict) else None
        with paused_collection(len(tasks) if isinstance(tasks, list) else 0):
            return handler(data)


class ObjectMeta(_Model):
    name: str
    namespace: str = "default"
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    _check_name = field_validator("name", "namespace")(check_name)


class Workflow(_Model):
    api_version: Literal["tideflow.dev/v1alpha1"] = API_VERSION
    kind: Literal["Workflow"] = "Workflow"
    metadata: ObjectMeta
    spec: WorkflowSpec

    def task(self, name: str) -> TaskSpec:
        for task in self.spec.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


class WorkflowRef(_Model):
    name: str


class Condition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None


class TaskCounts(_Model):
    total: int = 0
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    upstream_failed: int = 0
    terminated: int = 0


class WorkflowRunSpec(_Model):
    workflow_ref: WorkflowRef
    params: dict[str, Any] = Field(default_factory=dict)
    desired_state: DesiredState = DesiredState.RUNNING


class WorkflowRunStatus(_Model):
    phase: RunPhase = RunPhase.PENDING
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    tasks: TaskCounts = TaskCounts()
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class WorkflowRun(_Model):
    api_version: Literal["tideflow.dev/v1alpha1"] = API_VERSION
    kind: Literal["WorkflowRun"] = "WorkflowRun"
    metadata: ObjectMeta
    spec: WorkflowRunSpec
    status: WorkflowRunStatus | None = None


Manifest = Workflow | WorkflowRun


def to_document(obj: BaseModel) -> dict[str, Any]:
    """The manifest as plain data: camelCase keys, ``apiVersion`` and ``kind`` first,
    fields left at their defaults omitted (so YAML -> model -> YAML round-trips)."""
    head = obj.model_dump(mode="json", by_alias=True, include={"api_version", "kind"})
    body = obj.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    return head | body
