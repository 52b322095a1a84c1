"""The task graph of a workflow: cycle detection, topological order, reachability.

Validation calls :func:`find_cycle` on the raw ``dependsOn`` lists; the engine
builds a :class:`Graph` from an already validated workflow and asks it for the
order, the roots and the up/downstream of a task. Everything here is
iterative (a 10,000-task chain must not hit the recursion limit) and linear
in the size of the graph, apart from the heap that keeps the topological
order stable.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tideflow.model import TaskSpec
from tideflow.model.collection import paused_collection

__all__ = ["Graph", "find_cycle"]

_WHITE, _GREY, _BLACK = 0, 1, 2


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a closed path (``["a", "b", "c", "a"]``), or None.

    ``deps`` maps each node to the nodes it depends on; a node named only as
    a dependency counts as a node without dependencies. The search starts from
    the first node in mapping order and follows dependencies in list order, so
    the same input always reports the same cycle. A self-dependency is a cycle
    ``["a", "a"]``.
    """
    if _declared_in_order(deps):
        return None
    colour: dict[str, int] = {}
    for start in deps:
        if colour.get(start, _WHITE) != _WHITE:
            continue
        # Depth-first search with an explicit stack of (node, next dependency index).
        path: list[str] = [start]
        cursor: list[int] = [0]
        colour[start] = _GREY
        while path:
            node = path[-1]
            children = deps.get(node, ())
            if cursor[-1] < len(children):
                child = children[cursor[-1]]
                cursor[-1] += 1
                state = colour.get(child, _WHITE)
                if state == _GREY:
                    return [*path[path.index(child) :], child]
                if state == _WHITE:
                    colour[child] = _GREY
                    path.append(child)
                    cursor.append(0)
            else:
                colour[node] = _BLACK
                path.pop()
                cursor.pop()
    return None


def _declared_in_order(deps: Mapping[str, Sequence[str]]) -> bool:
    """Whether every node's dependencies come before it in mapping order (or are not
    nodes of the mapping): then there is no cycle, and mapping order is a
    topological order. Most workflows are written that way, and this one pass
    over the edges is much cheaper than a depth-first search or a heap."""
    position = {name: i for i, name in enumerate(deps)}
    get = position.get
    for i, children in enumerate(deps.values()):
        for child in children:
            if get(child, -1) >= i:
                return False
    return True


@dataclass(frozen=True, eq=False)
class Graph:
    """The DAG of a validated workflow.

    Attributes:
        upstream: task name -> the tasks it depends on (declaration order of ``dependsOn``).
        downstream: task name -> the tasks that depend on it (declaration order of tasks).
        order: all tasks, topologically sorted; among tasks that are ready at the same
            time the one declared first comes first, so the order is stable.
    """

    upstream: dict[str, tuple[str, ...]]
    downstream: dict[str, tuple[str, ...]]
    order: tuple[str, ...]

    @classmethod
    def from_tasks(cls, tasks: Sequence[TaskSpec]) -> Graph:
        """Build the graph. Assumes validation passed (unique names, known deps, no cycle).

        Raises:
            ValueError: the dependencies contain a cycle.
        """
        with paused_collection(len(tasks)):
            return cls.from_edges((task.name, task.depends_on) for task in tasks)

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[str, Sequence[str]]]) -> Graph:
        """Build the graph from (task, dependencies) pairs in declaration order."""
        upstream = {
            name: tuple(deps) if len(deps) < 2 else tuple(dict.fromkeys(deps))
            for name, deps in edges
        }
        downstream_lists: dict[str, list[str]] = {name: [] for name in upstream}
        for name, deps in upstream.items():
            for dep in deps:
                downstream_lists[dep].append(name)
        downstream = {name: tuple(children) for name, children in downstream_lists.items()}
        return cls(upstream, downstream, _topological_order(upstream, downstream))

    @property
    def roots(self) -> tuple[str, ...]:
        """Tasks without dependencies, in declaration order."""
        return tuple(name for name, deps in self.upstream.items() if not deps)

    @property
    def leaves(self) -> tuple[str, ...]:
        """Tasks nothing depends on, in declaration order."""
        return tuple(name for name, children in self.downstream.items() if not children)

    def ancestors(self, name: str) -> set[str]:
        """Every task ``name`` depends on, directly or transitively."""
        return _reach(self.upstream, name)

    def descendants(self, name: str) -> set[str]:
        """Every task that depends on ``name``, directly or transitively."""
        return _reach(self.downstream, name)

    def __len__(self) -> int:
        return len(self.upstream)


def _reach(edges: Mapping[str, Sequence[str]], start: str) -> set[str]:
    if start not in edges:
        raise KeyError(start)
    seen: set[str] = set()
    stack = list(edges[start])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(edges[node])
    return seen


def _topological_order(
    upstream: Mapping[str, Sequence[str]], downstream: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    if _declared_in_order(upstream):
        # Kahn's algorithm below would pop the tasks in declaration order: at
        # each step the next declared task is ready and has the lowest index.
        return tuple(upstream)
    # Kahn's algorithm; the heap holds declaration indices of ready tasks.
    names = list(upstream)
    index = {name: i for i, name in enumerate(names)}
    waiting = {name: len(deps) for name, deps in upstream.items()}
    ready = [index[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for child in downstream[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, index[child])
    if len(order) != len(names):
        cycle = find_cycle(upstream) or []
        raise ValueError(f"dependency cycle: {' -> '.join(cycle)}")
    return tuple(order)
