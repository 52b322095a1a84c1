"""The benchmark workloads and the plain-asyncio baselines the engine is compared with."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from benchmarks import baselines, workloads
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
