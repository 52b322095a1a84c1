"""The benchmark runner behind ``make bench``.

For each database given with ``--db`` (SQLite in a temporary directory when
none is) and each reference workload (W1 fan-out, W2 chain, W3 grid) it
measures, in one run on one machine:

* the engine: a run of the workload's ``Workflow`` with no-op async tasks on
  that database, driven by :class:`tideflow.engine.Engine` exactly as
  ``tideflow run --wait`` drives it, timed from the first tick to the run's end;
* the durable baseline on the same database (:func:`benchmarks.baselines.run_asyncio_durable`:
  asyncio + the raw driver, one group commit per tick) on the same shape;
* once per workload, the in-memory asyncio baseline (no database).

``--db`` may be given several times (``--db sqlite --db postgresql://… --db
mysql://…``); one table compares them all. A server URL is only used to
connect: each measurement runs in a scratch database created and dropped on
that server (:mod:`benchmarks.databases`), so no user data is touched.

Each engine measurement runs in a fresh child process, on a fresh database,
so its peak RSS is its own, and is paired with a durable-baseline measurement
in a fresh child process of its own right after it. Shared machines are noisy:
another process only ever slows a run down, and a 200-task baseline lasts a
few milliseconds, so one scheduler hiccup can halve it. Each figure is
therefore the best of its ``--repeat`` runs, as ``timeit`` reports, and the
ratio engine / durable baseline of the same database (best over best) is what
to compare across machines; medians and each pair's ratio are kept in the JSON.
A 10,000-task layered workflow is also validated and planned (timed) and run
on the first database (peak RSS). Results are printed and written as JSON.

``--scale`` runs only the scale check of a 100,000-task fan-out (1 -> 100,000
-> 1): validate and plan time, RSS right after the run is created, and the
peak RSS of running it (in a child process, on the first database). It is a
report, never a pass/fail: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import baselines, databases, workloads
from benchmarks.databases import Target

#: The child process reads its database URL here (not argv: it may hold a password).
URL_VARIABLE = "TIDEFLOW_BENCH_URL"

#: How the parent starts a child engine measurement.
ENGINE_ONCE = (sys.executable, "-m", "benchmarks.run", "--engine-once")
#: How the parent starts a child durable-baseline measurement.
BASELINE_ONCE = (sys.executable, "-m", "benchmarks.run", "--baseline-once")

#: Columns of the results table: (heading, width).
COLUMNS = (
    ("database", 12),
    ("workload", 12),
    ("tasks", 7),
    ("engine/s", 10),
    ("baseline/s", 12),
    ("ratio", 8),
    ("RSS MB", 8),
)


#: The scale check's workload (``--scale``): a fan-out 1 -> 100,000 -> 1.
SCALE_SHAPE = "fan-out-100k"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    """The current RSS (Linux); elsewhere the peak so far, an upper bound."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return _peak_rss_mb()


def engine_once(shape_name: str, slots: int, url: str | None = None) -> dict[str, Any]:
    """One engine run of a workload in this process (called in a child process).

    ``url`` is an empty database (migrated here); ``None`` is SQLite in a temporary directory.
    """
    if url is None:
        with tempfile.TemporaryDirectory() as tmp:
            return engine_once(shape_name, slots, f"sqlite:///{tmp}/bench.db")

    from tideflow.engine.control import submit_run
    from tideflow.engine.reconciler import Engine, EngineSettings
    from tideflow.executors.local import LocalExecutor
    from tideflow.model import RunPhase, Workflow
    from tideflow.storage.migrating import upgrade
    from tideflow.storage.store import SqlStore

    deps = _shape(shape_name)
    upgrade(url)
    store = SqlStore.from_url(url)
    try:
        workflow = Workflow.model_validate(workloads.workflow_document(shape_name, deps))
        run = submit_run(store, workflow)
        created_rss = _rss_mb()
        engine = Engine(store, LocalExecutor(threads=4), EngineSettings(slots=slots))
        started = time.perf_counter()
        final = asyncio.run(engine.drive(run.id))
        seconds = time.perf_counter() - started
        if final.phase is not RunPhase.SUCCEEDED:
            raise RuntimeError(f"{shape_name}: the run ended {final.phase.value}")
        tasks = store.list_tasks(run.id)
        if len(tasks) != len(deps) or any(t.attempt != 1 for t in tasks):
            raise RuntimeError(f"{shape_name}: not every task ran exactly once")
    finally:
        store.close()
    return {
        "tasks": len(deps),
        "seconds": seconds,
        "tasks_per_s": len(deps) / seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_after_create_mb": created_rss,
    }


def _shape(name: str) -> workloads.Shape:
    if name == "layered-10k":
        return workloads.layered()
    if name == SCALE_SHAPE:
        return workloads.fan_out(100_000)
    return workloads.shapes()[name]


def plan_10k(shape_name: str = "layered-10k") -> dict[str, Any]:
    """Validate and plan a large workflow (model parse, validation, graph, instances):
    the 10,000-task layered one, or ``shape_name``."""
    from tideflow.definition.dag import Graph
    from tideflow.definition.validation import validate_workflow
    from tideflow.engine.control import plan_tasks
    from tideflow.model import Workflow

    document = workloads.workflow_document(shape_name, _shape(shape_name))
    started = time.perf_counter()
    workflow = Workflow.model_validate(document)
    problems = validate_workflow(workflow)
    Graph.from_tasks(workflow.spec.tasks)
    plan_tasks(workflow)
    seconds = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"the {shape_name} workflow does not validate: {problems[:3]}")
    return {"tasks": len(workflow.spec.tasks), "validate_and_plan_seconds": seconds}


def _child(shape_name: str, slots: int, target: Target) -> dict[str, Any]:
    """One engine measurement in a fresh child process, on a fresh database of ``target``."""
    return _in_child([*ENGINE_ONCE, shape_name, "--slots", str(slots)], shape_name, target)


def _baseline_child(shape_name: str, target: Target) -> dict[str, Any]:
    """One durable-baseline measurement in a fresh child process, on a fresh database."""
    return _in_child([*BASELINE_ONCE, shape_name], shape_name, target)


def _in_child(argv: list[str], shape_name: str, target: Target) -> dict[str, Any]:
    with databases.scratch_database(target) as url:
        out = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, URL_VARIABLE: url},
        )
    if out.returncode != 0:
        raise RuntimeError(
            f"the measurement of {shape_name} on {target.label} failed:\n{out.stderr.strip()}"
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def baseline_once(shape_name: str, url: str | None = None) -> dict[str, Any]:
    """One durable-baseline run of a workload in this process (called in a child process)."""
    if url is None:
        with tempfile.TemporaryDirectory() as tmp:
            return baseline_once(shape_name, f"sqlite:///{tmp}/bench.db")
    return dict(baselines.run_asyncio_durable(_shape(shape_name), url))


def _pairs(name: str, slots: int, target: Target, repeat: int) -> dict[str, Any]:
    """``repeat`` engine measurements, each followed by a baseline one."""
    engines: list[dict[str, Any]] = []
    durables: list[dict[str, Any]] = []
    for _ in range(repeat):
        engines.append(_child(name, slots, target))
        durables.append(_baseline_child(name, target))
    engine, durable = _summary(engines), _summary(durables)
    ratios = [e["tasks_per_s"] / d["tasks_per_s"] for e, d in zip(engines, durables, strict=True)]
    return {
        "engine": engine,
        "baseline_durable": durable,
        "engine_vs_durable_baseline": engine["tasks_per_s"] / durable["tasks_per_s"],
        "pair_ratios": ratios,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The best run's figures (``tasks_per_s``, ``seconds``), with the medians beside them."""
    best = max(runs, key=lambda r: r["tasks_per_s"])
    median = _median(runs)
    return {
        **median,
        "tasks_per_s": best["tasks_per_s"],
        "seconds": best["seconds"],
        "median_tasks_per_s": median["tasks_per_s"],
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    result = {
        "tasks_per_s": statistics.median(r["tasks_per_s"] for r in runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "runs": len(runs),
    }
    if "peak_rss_mb" in runs[0]:
        result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return result


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (database, workload) of ``results["databases"]``, in measurement order."""
    rows: list[dict[str, Any]] = []
    for label, database in results["databases"].items():
        for name, row in database["workloads"].items():
            rows.append(
                {
                    "database": label,
                    "workload": name,
                    "tasks": row["tasks"],
                    "engine_tasks_per_s": row["engine"]["tasks_per_s"],
                    "baseline_tasks_per_s": row["baseline_durable"]["tasks_per_s"],
                    "ratio": row["engine_vs_durable_baseline"],
                    "peak_rss_mb": row["engine"]["peak_rss_mb"],
                }
            )
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The results table: database, workload, tasks, engine/s, baseline/s, ratio, RSS MB."""
    lines = ["".join(f"{h:<{w}}" if i < 2 else f"{h:>{w}}" for i, (h, w) in enumerate(COLUMNS))]
    for row in rows:
        widths = [w for _, w in COLUMNS]
        lines.append(
            f"{row['database']:<{widths[0]}}{row['workload']:<{widths[1]}}"
            f"{row['tasks']:>{widths[2]},}{row['engine_tasks_per_s']:>{widths[3]},.0f}"
            f"{row['baseline_tasks_per_s']:>{widths[4]},.0f}{row['ratio']:>{widths[5]}.3f}"
            f"{row['peak_rss_mb']:>{widths[6]}.0f}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--db`` values are parsed into ``args.targets``.

    Exits 2 (argparse) on a bad option or ``--db`` value.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--output", default="benchmarks/results.json")
    parser.add_argument(
        "--repeat", type=int, default=5, help="engine/baseline pairs (the best run is reported)"
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=1024,
        help="engine slots (default high, so slots are not what is measured)",
    )
    parser.add_argument(
        "--db",
        action="append",
        metavar="sqlite|URL",
        help="database to measure on, repeatable: sqlite (default; a temporary directory) "
        "or a server URL, postgresql://USER@HOST[:PORT]/DB or mysql://USER@HOST[:PORT]/DB; "
        "a scratch database is created on that server and dropped afterwards",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="only the 100,000-task scale check (validate+plan time, RSS after creating "
        "the run, peak RSS of the run), printed as a line and as JSON",
    )
    parser.add_argument("--engine-once", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-once", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat: must be at least 1")
    try:
        args.targets = databases.parse_targets(args.db)
    except ValueError as error:
        parser.error(f"--db: {error}")
    return args


def measure(targets: Sequence[Target], repeat: int, slots: int) -> dict[str, Any]:
    """Run every measurement; the results as written to ``results.json``."""
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "slots": slots,
        "repeat": repeat,
        # The first database's figures, under the keys of the SQLite-only releases.
        "workloads": {},
        "databases": {},
    }
    memory = {
        name: _summary([baselines.run_asyncio_memory(deps) for _ in range(repeat)])
        for name, deps in workloads.shapes().items()
    }
    for target in targets:
        rows: dict[str, Any] = {}
        for name, deps in workloads.shapes().items():
            print(f"  {target.label}: {name}…", file=sys.stderr, flush=True)
            rows[name] = {"tasks": len(deps), **_pairs(name, slots, target, repeat)}
        results["databases"][target.label] = {
            "kind": target.kind,
            "server": databases.server_version(target),
            "workloads": rows,
        }
    first = targets[0]
    for name, row in results["databases"][first.label]["workloads"].items():
        legacy = {"database": first.label, **row, "baseline_asyncio_memory": memory[name]}
        if first.kind == "sqlite":
            legacy["baseline_asyncio_sqlite"] = row["baseline_durable"]
        results["workloads"][name] = legacy
    print(f"  {first.label}: layered-10k…", file=sys.stderr, flush=True)
    results["scale_10k"] = plan_10k() | {
        "database": first.label,
        "run_peak_rss_mb": _child("layered-10k", slots, first)["peak_rss_mb"],
    }
    return results


def scale(target: Target, slots: int) -> dict[str, Any]:
    """The 100,000-task scale check (``--scale``): figures, no verdict."""
    print(f"  {target.label}: {SCALE_SHAPE}…", file=sys.stderr, flush=True)
    planned = plan_10k(SCALE_SHAPE)
    ran = _child(SCALE_SHAPE, slots, target)
    return {
        "database": target.label,
        "tasks": planned["tasks"],
        "validate_and_plan_seconds": planned["validate_and_plan_seconds"],
        "rss_after_create_mb": ran["rss_after_create_mb"],
        "run_peak_rss_mb": ran["peak_rss_mb"],
        "run_seconds": ran["seconds"],
    }


def report_scale(figures: dict[str, Any]) -> str:
    return (
        f"{figures['tasks']:,}-task fan-out: validated and planned in "
        f"{figures['validate_and_plan_seconds']:.2f}s; on {figures['database']}: "
        f"RSS {figures['rss_after_create_mb']:.0f} MB after creating the run, "
        f"ran in {figures['run_seconds']:.1f}s with peak RSS {figures['run_peak_rss_mb']:.0f} MB"
    )


def report(results: dict[str, Any]) -> str:
    """The printed report: the table, the in-memory baseline, the 10,000-task figures."""
    memory = ", ".join(
        f"{name} {row['baseline_asyncio_memory']['tasks_per_s']:,.0f}/s"
        for name, row in results["workloads"].items()
    )
    scale = results["scale_10k"]
    servers = "; ".join(f"{label}: {db['server']}" for label, db in results["databases"].items())
    return "\n".join(
        [
            format_table(table_rows(results)),
            "ratio = engine / baseline (asyncio + raw driver, one commit per tick) "
            "on the same database",
            f"asyncio in-memory baseline (no database): {memory}",
            f"10,000-task workflow: validated and planned in "
            f"{scale['validate_and_plan_seconds']:.2f}s; ran on {scale['database']} "
            f"with peak RSS {scale['run_peak_rss_mb']:.0f} MB",
            f"databases: {servers}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.engine_once:
        print(json.dumps(engine_once(args.engine_once, args.slots, os.environ.get(URL_VARIABLE))))
        return 0
    if args.baseline_once:
        print(json.dumps(baseline_once(args.baseline_once, os.environ.get(URL_VARIABLE))))
        return 0
    targets: list[Target] = []
    for target in args.targets:
        try:
            targets.append(databases.relabel(target, databases.server_version(target)))
        except Exception as error:  # unreachable server, refused login…
            print(f"error: {target.describe()} is unusable: {error}", file=sys.stderr)
            return 3
    if args.scale:
        try:
            figures = scale(targets[0], args.slots)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(report_scale(figures))
        print(json.dumps(figures))
        return 0
    try:
        results = measure(targets, args.repeat, args.slots)
    except (RuntimeError, baselines.BaselineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report(results))
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
