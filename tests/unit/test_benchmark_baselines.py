"""The benchmark workloads, the plain-asyncio baselines the engine is compared with, and the
runner's pure parts: ``--db`` parsing and the results table."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from benchmarks import baselines, databases, run, workloads
from benchmarks.baselines import BaselineError, Event, verify_trace
from tideflow.model import Workflow

SMALL = {
    "fan-out": workloads.fan_out(width=10),
    "chain": workloads.chain(length=7),
    "grid": workloads.grid(layers=4, width=3),
    "diamond": {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]},
}


def test_the_reference_shapes_have_the_documented_sizes() -> None:
    shapes = workloads.shapes()
    assert list(shapes) == ["w1-fan-out", "w2-chain", "w3-grid"]
    w1, w2, w3 = shapes.values()
    assert len(w1) == 1002 and workloads.edge_count(w1) == 1000 + 1000
    assert w1["start"] == [] and w1["t0999"] == ["start"] and len(w1["end"]) == 1000
    assert len(w2) == 200 and workloads.edge_count(w2) == 199
    assert w2["c000"] == [] and w2["c199"] == ["c198"]
    # 19 layer boundaries, each 50 x 50 edges.
    assert len(w3) == 1000 and workloads.edge_count(w3) == 19 * 50 * 50
    assert w3["l00-n00"] == [] and w3["l19-n49"] == [f"l18-n{i:02d}" for i in range(50)]


def test_the_large_layered_shape_is_reproducible() -> None:
    big = workloads.layered()
    assert len(big) == 10_000 and big == workloads.layered()
    assert workloads.edge_count(big) == (10_000 - 100) * 4
    for name, deps in big.items():
        layer = int(name[1:]) // 100
        assert len(set(deps)) == len(deps) == (4 if layer else 0)
        assert all(int(dep[1:]) // 100 == layer - 1 for dep in deps)


@pytest.mark.parametrize("name", ["w1-fan-out", "w2-chain", "w3-grid"])
def test_each_reference_shape_is_a_valid_workflow(name: str) -> None:
    deps = workloads.shapes()[name]
    workflow = Workflow.model_validate(workloads.workflow_document(name, deps))
    assert workflow.metadata.name == name
    assert {t.name: t.depends_on for t in workflow.spec.tasks} == deps
    assert {t.function for t in workflow.spec.tasks} == {workloads.NOOP}


def test_the_noop_task_is_an_async_function_returning_none() -> None:
    assert asyncio.run(workloads.noop()) is None


@pytest.mark.parametrize("name", SMALL)
def test_the_memory_baseline_runs_every_task(name: str) -> None:
    result = baselines.run_asyncio_memory(SMALL[name])
    assert result["tasks"] == len(SMALL[name])
    assert result["seconds"] > 0 and result["tasks_per_s"] > 0


@pytest.mark.parametrize("name", SMALL)
def test_the_sqlite_baseline_leaves_every_row_succeeded(name: str, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    result = baselines.run_asyncio_sqlite(SMALL[name], db)
    assert result["tasks"] == len(SMALL[name])
    with closing(sqlite3.connect(db)) as conn:
        rows = dict(conn.execute("SELECT name, state FROM tasks").fetchall())
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    assert rows == dict.fromkeys(SMALL[name], "succeeded")
    assert mode == "wal"


def test_the_sqlite_baseline_commits_once_per_tick(tmp_path: Path) -> None:
    # fan-out: start runs; start done + 10 run; 10 done + end runs; end done.
    assert baselines.run_asyncio_sqlite(SMALL["fan-out"], tmp_path / "a.db")["commits"] == 4
    # chain: one commit to start c000, then one per completion.
    assert baselines.run_asyncio_sqlite(SMALL["chain"], tmp_path / "b.db")["commits"] == 8


def test_the_sqlite_baseline_can_reuse_its_database(tmp_path: Path) -> None:
    baselines.run_asyncio_sqlite(SMALL["chain"], tmp_path / "s.db")
    assert baselines.run_asyncio_sqlite(SMALL["diamond"], tmp_path / "s.db")["tasks"] == 4


@pytest.mark.parametrize(
    ("deps", "message"),
    [({}, "at least one task"), ({"a": ["x"]}, "unknown"), ({"a": ["b"], "b": ["a"]}, "cycle")],
)
def test_bad_shapes_are_refused(deps: workloads.Shape, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        baselines.run_asyncio_memory(deps)
    with pytest.raises(ValueError, match=message):
        baselines.run_asyncio_sqlite(deps, tmp_path / "x.db")


DIAMOND = SMALL["diamond"]
Edit = Callable[[list[Event]], list[Event]]


def _good_trace() -> list[Event]:
    """Three waves, each: running committed, started, finished, succeeded committed."""
    events: list[Event] = []
    for wave in (["a"], ["b", "c"], ["d"]):
        events += [("running", n) for n in wave] + [("start", n) for n in wave]
        events += [("finish", n) for n in wave] + [("succeeded", n) for n in wave]
    return events


def _start_d_after(events: list[Event], anchor: Event) -> list[Event]:
    """Move d's running commit and start to just after ``anchor``."""
    moved: list[Event] = [("running", "d"), ("start", "d")]
    rest = [e for e in events if e not in moved]
    i = rest.index(anchor) + 1
    return rest[:i] + moved + rest[i:]


def _swap(events: list[Event], x: Event, y: Event) -> list[Event]:
    i, j = events.index(x), events.index(y)
    events[i], events[j] = events[j], events[i]
    return events


def test_a_correct_trace_passes() -> None:
    verify_trace(DIAMOND, _good_trace(), durable=True)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ev: [*ev, ("start", "b")], "start happened twice"),
        (lambda ev: [e for e in ev if e != ("start", "c")], r"start: missing \['c'\]"),
        (lambda ev: _start_d_after(ev, ("start", "c")), "before its dependency b finished"),
        (lambda ev: _start_d_after(ev, ("finish", "c")), "before b's success was committed"),
        (lambda ev: _swap(ev, ("running", "d"), ("start", "d")), "running state was committed"),
    ],
)
def test_a_broken_trace_is_caught(edit: Edit, message: str) -> None:
    with pytest.raises(BaselineError, match=message):
        verify_trace(DIAMOND, edit(_good_trace()), durable=True)


def test_the_memory_trace_does_not_need_commits() -> None:
    events = [e for e in _good_trace() if e[0] in ("start", "finish")]
    verify_trace(DIAMOND, events, durable=False)
    with pytest.raises(BaselineError, match="running"):
        verify_trace(DIAMOND, events, durable=True)


def test_a_failing_task_fails_the_baseline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    async def boom() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(baselines, "noop", boom)
    with pytest.raises(BaselineError, match="boom"):
        baselines.run_asyncio_memory(DIAMOND)
    with pytest.raises(BaselineError, match="boom"):
        baselines.run_asyncio_sqlite(DIAMOND, tmp_path / "f.db")


# -- several databases: the durable baseline by URL, --db parsing, the results table ------


def test_the_durable_baseline_takes_a_sqlite_url(tmp_path: Path) -> None:
    result = baselines.run_asyncio_durable(SMALL["grid"], f"sqlite:///{tmp_path / 'g.db'}")
    # grid 4 x 3: one commit per layer to start it, and one for the last layer's success.
    assert result["tasks"] == 12 and result["commits"] == 5
    with closing(sqlite3.connect(tmp_path / "g.db")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tasks WHERE state = 'succeeded'").fetchone() == (
            12,
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://scott@db/orcl", "no durable baseline for 'oracle'"),
        ("sqlite://", "needs a file"),
    ],
)
def test_the_durable_baseline_refuses_other_databases(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        baselines.run_asyncio_durable(SMALL["diamond"], url)


@pytest.mark.parametrize(
    "state", [baselines.SqliteState, baselines.PostgresqlState, baselines.MysqlState]
)
def test_the_baseline_sql_is_fixed_text_with_driver_parameters(state: type) -> None:
    statements = {k: v for k, v in vars(state).items() if k.endswith("_SQL")}
    assert set(statements) == {
        "CREATE_SQL",
        "INSERT_SQL",
        "SUCCEEDED_SQL",
        "RUNNING_SQL",
        "COUNT_SQL",
    }
    marker = "?" if state is baselines.SqliteState else "%s"
    for key in ("INSERT_SQL", "SUCCEEDED_SQL", "RUNNING_SQL"):
        assert statements[key].count(marker) == 2 and "{" not in statements[key]


def test_db_defaults_to_sqlite_and_takes_several_databases() -> None:
    assert [t.label for t in run.parse_args([]).targets] == ["sqlite"]
    args = run.parse_args(
        [
            "--db", "sqlite",
            "--db", "postgresql://postgres@127.0.0.1:5432/test",
            "--db", "mysql://root:secret@127.0.0.1/test",
            "--db", "mariadb://root@db2/test",
            "--repeat", "1",
        ]
    )  # fmt: skip
    assert args.repeat == 1
    assert [(t.kind, t.label) for t in args.targets] == [
        ("sqlite", "sqlite"),
        ("postgresql", "postgresql"),
        ("mysql", "mysql"),
        ("mysql", "mariadb"),
    ]
    postgresql, mysql = args.targets[1].server, args.targets[2].server
    assert postgresql is not None and postgresql.drivername == "postgresql+psycopg"
    assert mysql is not None and mysql.drivername == "mysql+pymysql" and mysql.password == "secret"
    assert "secret" not in args.targets[2].describe()


def test_the_same_database_twice_gets_two_labels() -> None:
    targets = databases.parse_targets(
        ["sqlite", "sqlite", "postgresql://u@h/d", "postgresql://u@k/d"]
    )
    assert [t.label for t in targets] == ["sqlite", "sqlite#2", "postgresql", "postgresql#2"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sqlite:///tmp/x.db", "write --db sqlite"),
        ("oracle://scott@db/orcl", "unsupported database 'oracle'"),
        ("postgresql:///test", "needs a host"),
        ("not a url", "not a database URL"),
    ],
)
def test_a_bad_db_is_a_usage_error(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run.parse_args(["--db", value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_repeat_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run.parse_args(["--repeat", "0"])
    assert "--repeat: must be at least 1" in capsys.readouterr().err


def test_a_mysql_url_on_a_mariadb_server_is_labelled_mariadb() -> None:
    target = databases.parse_target("mysql://root@127.0.0.1/test")
    assert databases.relabel(target, "10.11.6-MariaDB-0+deb12u1").label == "mariadb"
    assert databases.relabel(target, "8.0.36").label == "mysql"
    sqlite = databases.parse_target("sqlite")
    assert databases.relabel(sqlite, "SQLite 3.40.1") == sqlite


def test_a_sqlite_scratch_database_lives_in_a_directory_removed_afterwards() -> None:
    with databases.scratch_database(databases.parse_target("sqlite")) as url:
        path = Path(url.removeprefix("sqlite:///"))
        assert url.startswith("sqlite:///") and path.name == "bench.db"
        assert path.parent.is_dir() and not path.exists()
    assert not path.parent.exists()


def _results() -> dict[str, Any]:
    def row(tasks: int, engine: float, baseline: float, rss: float) -> dict[str, Any]:
        return {
            "tasks": tasks,
            "engine": {"tasks_per_s": engine, "peak_rss_mb": rss},
            "baseline_durable": {"tasks_per_s": baseline},
            "engine_vs_durable_baseline": engine / baseline,
        }

    return {
        "databases": {
            "sqlite": {"workloads": {"w1-fan-out": row(1002, 6304.4, 90387.0, 71.2)}},
            "postgresql": {"workloads": {"w2-chain": row(200, 197.0, 886.0, 75.0)}},
        }
    }


def test_the_results_table_has_one_row_per_database_and_workload() -> None:
    assert run.format_table(run.table_rows(_results())).splitlines() == [
        "database    workload      tasks  engine/s  baseline/s   ratio  RSS MB",
        "sqlite      w1-fan-out    1,002     6,304      90,387   0.070      71",
        "postgresql  w2-chain        200       197         886   0.222      75",
    ]


def test_the_report_adds_the_memory_baseline_and_the_10k_figures() -> None:
    results = _results()
    results["databases"]["sqlite"]["server"] = "SQLite 3.40.1"
    results["databases"]["postgresql"]["server"] = "PostgreSQL 15.2"
    results["workloads"] = {"w1-fan-out": {"baseline_asyncio_memory": {"tasks_per_s": 155644.0}}}
    results["scale_10k"] = {
        "validate_and_plan_seconds": 0.16,
        "database": "sqlite",
        "run_peak_rss_mb": 111.0,
    }
    text = run.report(results)
    assert "asyncio in-memory baseline (no database): w1-fan-out 155,644/s" in text
    assert "validated and planned in 0.16s; ran on sqlite with peak RSS 111 MB" in text
    assert "postgresql: PostgreSQL 15.2" in text
