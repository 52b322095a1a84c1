"""Pool capacities live in the database: ``pool set``, ``get pools``, settings applied at start."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.cli import spawn, stop, tideflow
from tideflow.config import load_settings
from tideflow.errors import ValidationError

T = "tests.integration.tasks"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pools.db'}"


def _pools(db: str, cwd: Path) -> list[dict[str, object]]:
    result = tideflow("get", "pools", "-o", "json", db=db, cwd=cwd)
    assert result.code == 0, result.err
    pools: list[dict[str, object]] = json.loads(result.out)
    return pools


def test_pool_set_stores_a_capacity_that_get_pools_shows(tmp_path: Path, db: str) -> None:
    empty = tideflow("get", "pools", db=db, cwd=tmp_path)
    assert (empty.code, empty.out, empty.err.strip()) == (0, "", "No pools found.")
    set_ = tideflow("pool", "set", "vendor-api", "4", db=db, cwd=tmp_path)
    assert set_.code == 0, set_.err
    assert set_.out.strip() == "pool/vendor-api capacity set to 4"
    assert tideflow("pool", "set", "archive", "1", db=db, cwd=tmp_path).code == 0
    assert tideflow("pool", "set", "vendor-api", "6", db=db, cwd=tmp_path).code == 0

    table = tideflow("get", "pools", db=db, cwd=tmp_path)
    assert table.code == 0, table.err
    assert [line.split() for line in table.out.strip().splitlines()] == [
        ["NAME", "CAPACITY", "IN", "USE"],
        ["archive", "1", "0"],
        ["vendor-api", "6", "0"],
    ]
    assert _pools(db, tmp_path) == [
        {"name": "archive", "capacity": 1, "inUse": 0},
        {"name": "vendor-api", "capacity": 6, "inUse": 0},
    ]
    one = tideflow("get", "pool", "vendor-api", "-o", "yaml", db=db, cwd=tmp_path)
    assert yaml.safe_load(one.out) == {"name": "vendor-api", "capacity": 6, "inUse": 0}
    names = tideflow("-o", "name", "get", "pools", db=db, cwd=tmp_path)
    assert names.out.split() == ["pool/archive", "pool/vendor-api"]
    # Pools have no namespace: -n changes nothing.
    assert tideflow("get", "pools", "-n", "quant", "-o", "name", db=db, cwd=tmp_path).out == (
        names.out
    )
    missing = tideflow("get", "pool", "nope", db=db, cwd=tmp_path)
    assert (missing.code, missing.err.strip()) == (2, 'error: pool "nope" not found')


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pool", "set", "vendor-api", "0"], "0 is not in the range x>=1"),
        (["pool", "set", "vendor-api", "-3"], "No such option '-3'"),
        (["pool", "set", "vendor-api", "four"], "'four' is not a valid integer"),
        (["pool", "set", "Vendor_API", "2"], "invalid name 'Vendor_API'"),
        (["pool", "set", "vendor-api"], "Missing argument 'N'"),
        (["get", "pools", "-w"], "-w watches runs and tasks, not pools"),
    ],
)
def test_bad_pool_input_exits_2_and_says_why(
    tmp_path: Path, db: str, argv: list[str], message: str
) -> None:
    result = tideflow(*argv, db=db, cwd=tmp_path)
    assert result.code == 2, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert tideflow("get", "pools", "-o", "name", db=db, cwd=tmp_path).out == ""


def test_a_bad_pool_name_in_the_settings_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "tideflow.yaml"
    config.write_text("pools: {Vendor_API: 2}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="invalid name 'Vendor_API'"):
        load_settings(config)


def test_a_server_stores_its_settings_and_pool_set_overrides_them_live(
    tmp_path: Path, db: str
) -> None:
    (tmp_path / "tideflow.yaml").write_text("pools: {vendor-api: 2}\n", encoding="utf-8")
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(f"""\
            apiVersion: tideflow.dev/v1alpha1
            kind: Workflow
            metadata: {{name: pooled}}
            spec:
              tasks:
                - name: list
                  function: {T}:symbols
                  args: {{n: 12}}
                - name: fetch
                  dependsOn: [list]
                  forEach: "{{{{ tasks['list'].output }}}}"
                  function: {T}:track
                  args: {{seconds: 1.0}}
                  pool: vendor-api
            """),
        encoding="utf-8",
    )
    assert tideflow("pool", "set", "vendor-api", "7", db=db, cwd=tmp_path).code == 0
    server = spawn("server", db=db, cwd=tmp_path)
    try:
        # Configuration as code: the server's settings replace the stored 7 when it starts.
        _eventually(lambda: _pools(db, tmp_path)[0]["capacity"] == 2)
        assert tideflow("pool", "set", "vendor-api", "1", db=db, cwd=tmp_path).code == 0
        started = tideflow("run", "-f", str(flow), "--name", "p1", db=db, cwd=tmp_path)
        assert started.code == 0, started.err
        # The running server counts against what `pool set` stored, not its own 2.
        # Two pooled tasks done one at a time before the capacity is raised live.
        _eventually(lambda: _succeeded_fetches(db, tmp_path) >= 2)
        assert tideflow("pool", "set", "vendor-api", "3", db=db, cwd=tmp_path).code == 0
        _eventually(
            lambda: "Succeeded" in tideflow("get", "run", "p1", db=db, cwd=tmp_path).out,
            timeout=60,
        )
        assert _pools(db, tmp_path) == [{"name": "vendor-api", "capacity": 3, "inUse": 0}]
        # Each pooled task returns how many ran at once in the server when it ended.
        listed = tideflow("get", "tasks", "p1", "-o", "json", db=db, cwd=tmp_path)
        fetched = [
            t for t in json.loads(listed.out) if t["task"] == "fetch" and t["index"] is not None
        ]
        peaks = [t["output"] for t in sorted(fetched, key=lambda t: t["finishedAt"])]
        assert len(peaks) == 12
        assert (peaks[:2], max(peaks)) == ([1, 1], 3)  # one at a time, then three once set live
    finally:
        stop(server)


def _succeeded_fetches(db: str, cwd: Path) -> int:
    listed = json.loads(tideflow("get", "tasks", "p1", "-o", "json", db=db, cwd=cwd).out)
    return sum(1 for t in listed if t["index"] is not None and t["phase"] == "Succeeded")


def _eventually(condition: object, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)
