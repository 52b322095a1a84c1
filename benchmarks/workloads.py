"""The benchmark workloads, as dependency dicts and as tideflow ``Workflow`` manifests.

The three reference shapes of DESIGN.md ("Performance") measure different costs:

* W1 fan-out, 1 -> 1000 -> 1: dispatch throughput when a thousand tasks become
  ready at once, then one join over all of them;
* W2 chain of 200: per-transition latency, since nothing can be batched;
* W3 grid, 20 layers x 50, all-to-all between consecutive layers: 47,500 edges,
  so the cost of readiness bookkeeping per edge shows.

A shape is a dict ``{task: [dependencies]}`` in topological order; the same
dict drives the baselines (:mod:`benchmarks.baselines`) and, through
:func:`workflow_document`, the engine. Every task calls :func:`noop`, so what is
measured is the scheduler, not the work.
"""

from __future__ import annotations

import random
from typing import Any

Shape = dict[str, list[str]]

#: The task function of every benchmark task, as a manifest references it.
NOOP = "benchmarks.workloads:noop"


async def noop() -> None:
    """Do nothing: the benchmarks measure scheduling, not work."""
    return None


def fan_out(width: int = 1000) -> Shape:
    """W1: ``start`` -> ``t0000`` ... -> ``end`` (``width`` parallel tasks)."""
    middle = [f"t{i:04d}" for i in range(width)]
    return {"start": [], **{name: ["start"] for name in middle}, "end": list(middle)}


def chain(length: int = 200) -> Shape:
    """W2: ``c000`` -> ``c001`` -> ... (``length`` sequential tasks)."""
    names = [f"c{i:03d}" for i in range(length)]
    return {name: names[i - 1 : i] for i, name in enumerate(names)}


def grid(layers: int = 20, width: int = 50) -> Shape:
    """W3: ``layers`` layers of ``width`` tasks (``l00-n00``...), each depending on
    every task of the layer before."""
    shape: Shape = {}
    previous: list[str] = []
    for layer in range(layers):
        current = [f"l{layer:02d}-n{node:02d}" for node in range(width)]
        shape.update({name: list(previous) for name in current})
        previous = current
    return shape


def layered(tasks: int = 10_000, width: int = 100, fan_in: int = 4, seed: int = 0) -> Shape:
    """A large layered DAG for the "validate and plan in < 1 s" check.

    ``tasks`` tasks (``n00000``...) in layers of ``width``; each task after the
    first layer depends on ``fan_in`` distinct tasks of the previous layer, picked
    with a seeded generator so the shape is irregular yet reproducible.
    All-to-all at this size would be ~1M edges, which measures YAML parsing
    rather than planning.
    """
    if fan_in > width:
        raise ValueError(f"fan_in ({fan_in}) cannot exceed width ({width})")
    rng = random.Random(seed)
    names = [f"n{i:05d}" for i in range(tasks)]
    shape: Shape = {}
    for i, name in enumerate(names):
        layer_start = i - i % width
        previous = names[max(0, layer_start - width) : layer_start]
        shape[name] = sorted(rng.sample(previous, fan_in)) if previous else []
    return shape


def shapes() -> dict[str, Shape]:
    """The three reference workloads by manifest name: W1, W2 and W3 of DESIGN.md."""
    return {"w1-fan-out": fan_out(), "w2-chain": chain(), "w3-grid": grid()}


def edge_count(shape: Shape) -> int:
    """Number of dependency edges of ``shape``."""
    return sum(len(deps) for deps in shape.values())


def workflow_document(shape_name: str, deps: Shape) -> dict[str, Any]:
    """A ``Workflow`` manifest (plain data, camelCase, as in YAML) running ``deps`` with no-ops.

    Args:
        shape_name: The workflow's ``metadata.name`` (a DNS-1123 label).
        deps: ``{task: [dependencies]}``; task names must be DNS-1123 labels too.
    """
    tasks: list[dict[str, Any]] = []
    for name, upstream in deps.items():
        task: dict[str, Any] = {"name": name, "function": NOOP}
        if upstream:
            task["dependsOn"] = list(upstream)
        tasks.append(task)
    return {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": shape_name, "labels": {"app.kubernetes.io/part-of": "benchmarks"}},
        "spec": {
            "description": f"Benchmark workload {shape_name}: {len(deps)} no-op tasks, "
            f"{edge_count(deps)} edges",
            "tasks": tasks,
        },
    }
