"""The benchmark runner behind ``make bench``.

For each reference workload (W1 fan-out, W2 chain, W3 grid) it measures, in
one run on one machine:

* the engine: a run of the workload's ``Workflow`` with no-op async tasks on a
  durable SQLite database (WAL), driven by :class:`tideflow.engine.Engine`
  exactly as ``tideflow run --wait`` drives it, timed from the first tick to
  the run's end;
* the in-memory asyncio baseline and the asyncio + SQLite group-commit
  baseline (:mod:`benchmarks.baselines`) on the same shape.

Each engine measurement runs in a fresh child process so its peak RSS is its
own. Every figure is the median of ``--repeat`` runs; the ratio
engine / durable baseline is what to compare across machines, since shared
machines are noisy. A 10,000-task layered workflow is also validated and
planned (timed) and run (peak RSS). Results are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import baselines, workloads


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_once(shape_name: str, slots: int) -> dict[str, Any]:
    """One engine run of a workload in this process (called in a child process)."""
    from tideflow.engine.control import submit_run
    from tideflow.engine.reconciler import Engine, EngineSettings
    from tideflow.executors.local import LocalExecutor
    from tideflow.model import RunPhase, Workflow
    from tideflow.storage.migrating import upgrade
    from tideflow.storage.store import SqlStore

    deps = _shape(shape_name)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        store = SqlStore.from_url(url)
        workflow = Workflow.model_validate(workloads.workflow_document(shape_name, deps))
        run = submit_run(store, workflow)
        engine = Engine(store, LocalExecutor(threads=4), EngineSettings(slots=slots))
        started = time.perf_counter()
        final = asyncio.run(engine.drive(run.id))
        seconds = time.perf_counter() - started
        if final.phase is not RunPhase.SUCCEEDED:
            raise RuntimeError(f"{shape_name}: the run ended {final.phase.value}")
        tasks = store.list_tasks(run.id)
        if len(tasks) != len(deps) or any(t.attempt != 1 for t in tasks):
            raise RuntimeError(f"{shape_name}: not every task ran exactly once")
        store.close()
    return {
        "tasks": len(deps),
        "seconds": seconds,
        "tasks_per_s": len(deps) / seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _shape(name: str) -> workloads.Shape:
    if name == "layered-10k":
        return workloads.layered()
    return workloads.shapes()[name]


def plan_10k() -> dict[str, Any]:
    """Validate and plan a 10,000-task workflow (model parse, validation, graph, instances)."""
    from tideflow.dag import Graph
    from tideflow.engine.control import plan_tasks
    from tideflow.model import Workflow
    from tideflow.validation import validate_workflow

    document = workloads.workflow_document("layered-10k", workloads.layered())
    started = time.perf_counter()
    workflow = Workflow.model_validate(document)
    problems = validate_workflow(workflow)
    Graph.from_tasks(workflow.spec.tasks)
    plan_tasks(workflow)
    seconds = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"the 10k workflow does not validate: {problems[:3]}")
    return {"tasks": len(workflow.spec.tasks), "validate_and_plan_seconds": seconds}


def _child(shape_name: str, slots: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--engine-once",
            shape_name,
            "--slots",
            str(slots),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    result = {
        "tasks_per_s": statistics.median(r["tasks_per_s"] for r in runs),
        "seconds": statistics.median(r["seconds"] for r in runs),
        "runs": len(runs),
    }
    if "peak_rss_mb" in runs[0]:
        result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="benchmarks/results.json")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--slots",
        type=int,
        default=1024,
        help="engine slots (default high, so slots are not what is measured)",
    )
    parser.add_argument("--engine-once", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine_once:
        print(json.dumps(engine_once(args.engine_once, args.slots)))
        return 0

    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
        "slots": args.slots,
        "workloads": {},
    }
    for name, deps in workloads.shapes().items():
        engine = _median([_child(name, args.slots) for _ in range(args.repeat)])
        memory = _median([baselines.run_asyncio_memory(deps) for _ in range(args.repeat)])
        with tempfile.TemporaryDirectory() as tmp:
            durable = _median(
                [
                    baselines.run_asyncio_sqlite(deps, Path(tmp) / f"b{i}.db")
                    for i in range(args.repeat)
                ]
            )
        results["workloads"][name] = {
            "tasks": len(deps),
            "engine": engine,
            "baseline_asyncio_memory": memory,
            "baseline_asyncio_sqlite": durable,
            "engine_vs_durable_baseline": engine["tasks_per_s"] / durable["tasks_per_s"],
        }
    results["scale_10k"] = plan_10k() | {
        "run_peak_rss_mb": _child("layered-10k", args.slots)["peak_rss_mb"]
    }

    print(
        f"{'workload':<14}{'tasks':>7}{'engine/s':>11}{'asyncio/s':>12}{'durable/s':>12}"
        f"{'ratio':>8}{'RSS MB':>9}"
    )
    for name, row in results["workloads"].items():
        print(
            f"{name:<14}{row['tasks']:>7}{row['engine']['tasks_per_s']:>11,.0f}"
            f"{row['baseline_asyncio_memory']['tasks_per_s']:>12,.0f}"
            f"{row['baseline_asyncio_sqlite']['tasks_per_s']:>12,.0f}"
            f"{row['engine_vs_durable_baseline']:>8.3f}{row['engine']['peak_rss_mb']:>9.0f}"
        )
    scale = results["scale_10k"]
    print(
        f"10,000-task workflow: validated and planned in {scale['validate_and_plan_seconds']:.2f}s;"
        f" ran with peak RSS {scale['run_peak_rss_mb']:.0f} MB"
    )
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
