"""Settings: file, environment and flag precedence, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tideflow.config import load_settings
from tideflow.errors import ValidationError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings read the working directory and TIDEFLOW_* variables: isolate both.
    for name in ("TIDEFLOW_DATABASE_URL", "TIDEFLOW_CONFIG", "TIDEFLOW_ENGINE__SLOTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_use_the_embedded_sqlite_database() -> None:
    settings = load_settings()
    assert settings.database.url == "sqlite:///tideflow.db"
    assert settings.engine.slots == 64
    assert settings.engine_settings().pools == {}


def test_the_file_is_read_and_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tideflow.yaml").write_text(
        "database: {url: 'postgresql://db/x'}\nengine: {slots: 8}\npools: {vendor-api: 3}\n"
    )
    settings = load_settings()
    assert (settings.database.url, settings.engine.slots) == ("postgresql://db/x", 8)
    assert settings.engine_settings().pools == {"vendor-api": 3}
    monkeypatch.setenv("TIDEFLOW_ENGINE__SLOTS", "16")
    monkeypatch.setenv("TIDEFLOW_DATABASE_URL", "mysql://db/y")
    settings = load_settings()
    assert (settings.database.url, settings.engine.slots) == ("mysql://db/y", 16)
    # The --db flag beats everything.
    assert load_settings(database_url="sqlite:///flag.db").database.url == "sqlite:///flag.db"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("engine: {slots: 0}", "engine.slots: must be greater than 0"),
        ("pools: {vendor-api: 0}", "pool 'vendor-api' needs a capacity greater than 0"),
        ("engine: {slot: 3}", "engine.slot: unknown field"),
        ("log_level: LOUD", "unknown log level 'LOUD'"),
        ("engine: [", "tideflow.yaml: line 1, column 10: expected the node content"),
        ("- a list", "must be a mapping of settings"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "tideflow.yaml").write_text(text)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert message in str(caught.value)


def test_a_missing_config_file_given_explicitly_is_an_error() -> None:
    with pytest.raises(ValidationError, match="config file not found"):
        load_settings("nowhere.yaml")
