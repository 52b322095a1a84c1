"""Settings: ``tideflow.yaml`` plus ``TIDEFLOW_*`` environment variables.

Read once at the entry point (the CLI) and passed down. Precedence, highest
first: explicit overrides (command-line flags), environment variables, the
YAML file, defaults. Nested fields take ``__`` in environment variables
(``TIDEFLOW_ENGINE__SLOTS=16``); ``TIDEFLOW_DATABASE_URL`` is accepted as the
conventional spelling of ``TIDEFLOW_DATABASE__URL``.

Example ``tideflow.yaml``::

    database:
      url: postgresql://tideflow@db.internal/tideflow
    engine:
      slots: 32
    pools:
      vendor-api: 4
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tideflow.definition.loading import problems_from_pydantic
from tideflow.engine.reconciler import EngineSettings
from tideflow.errors import Problem, ValidationError
from tideflow.model import check_name

DEFAULT_CONFIG_FILE = "tideflow.yaml"


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default="sqlite:///tideflow.db",
        description="SQLAlchemy URL: sqlite:///file.db, postgresql://…, mysql://…",
    )
    auto_migrate: bool = Field(
        default=True, description="Apply schema migrations when a command opens the database."
    )


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: int = Field(default=64, gt=0, description="Attempts one engine runs at once.")
    threads: int | None = Field(
        default=None,
        gt=0,
        description="Threads for synchronous Python tasks (default: as many as slots, so a "
        "started thread task never waits for a thread while its timeout runs).",
    )
    lease_seconds: float = Field(
        default=30.0,
        ge=3,
        description="Run lease length; an engine silent this long loses its runs.",
    )
    poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often control requests and new runs are polled."
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="On SIGTERM, how long running attempts may finish."
    )


class Settings(BaseSettings):
    """Everything an operator can configure."""

    model_config = SettingsConfigDict(
        env_prefix="TIDEFLOW_", env_nested_delimiter="__", extra="forbid"
    )

    database: DatabaseSettings = DatabaseSettings()
    engine: EngineConfig = EngineConfig()
    pools: dict[str, int] = Field(
        default_factory=dict,
        description="Named slot pools shared by all runs: name -> capacity. An engine "
        "(server, run --wait) stores these capacities in the database when it starts; "
        "every engine then counts against the stored value (tideflow pool set changes it).",
    )
    log_level: str = Field(default="WARNING", description="Python logging level of the engine.")

    @pydantic.field_validator("pools")
    @classmethod
    def _positive_pools(cls, pools: dict[str, int]) -> dict[str, int]:
        for name, capacity in pools.items():
            check_name(name)  # pools are stored by name, as manifests name them
            if capacity <= 0:
                raise ValueError(f"pool {name!r} needs a capacity greater than 0")
        return pools

    @pydantic.field_validator("log_level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        if level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {level!r}")
        return level.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables override the file (passed in as init values).
        return env_settings, init_settings

    def executor_threads(self) -> int:
        return self.engine.threads or self.engine.slots

    def engine_settings(self) -> EngineSettings:
        return EngineSettings(
            slots=self.engine.slots,
            pools=dict(self.pools),
            lease_seconds=self.engine.lease_seconds,
            poll_seconds=self.engine.poll_seconds,
            shutdown_grace_seconds=self.engine.shutdown_grace_seconds,
        )


def load_settings(
    config_file: str | Path | None = None, *, database_url: str | None = None
) -> Settings:
    """Read the settings; a bad value is a ``ValidationError`` naming the field."""
    path = Path(config_file or os.environ.get("TIDEFLOW_CONFIG") or DEFAULT_CONFIG_FILE)
    source = "configuration (TIDEFLOW_* variables)"
    data: dict[str, Any] = {}
    if path.exists():
        source = f"configuration ({path.name} or TIDEFLOW_* variables)"
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ValidationError([Problem("", f"{where}{problem}", path.name)]) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ValidationError([Problem("", "must be a mapping of settings", path.name)])
        data = loaded or {}
    elif config_file is not None:
        raise ValidationError([Problem("", "config file not found", str(path))])
    try:
        settings = Settings(**data)
    except pydantic.ValidationError as exc:
        raise ValidationError(problems_from_pydantic(exc, Settings, source)) from exc
    url = database_url or os.environ.get("TIDEFLOW_DATABASE_URL")
    if url:
        database = settings.database.model_copy(update={"url": url})
        settings = settings.model_copy(update={"database": database})
    return settings
