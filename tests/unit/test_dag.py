"""The task graph: cycles, topological order, reachability."""

from __future__ import annotations

import pytest

from tideflow.definition.dag import Graph, find_cycle
from tideflow.model import TaskSpec


def _tasks(deps: dict[str, list[str]]) -> list[TaskSpec]:
    return [TaskSpec(name=n, command=["true"], depends_on=d) for n, d in deps.items()]


def test_find_cycle_returns_none_for_a_dag() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_find_cycle_returns_a_closed_path_starting_from_the_first_node() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]


def test_find_cycle_reports_only_the_cycle_not_the_path_leading_to_it() -> None:
    assert find_cycle({"x": ["a"], "a": ["b"], "b": ["a"]}) == ["a", "b", "a"]


def test_find_cycle_sees_a_self_dependency() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_find_cycle_treats_unlisted_dependencies_as_leaves() -> None:
    assert find_cycle({"a": ["missing"]}) is None


def test_find_cycle_handles_a_long_chain_without_recursion() -> None:
    n = 10_000
    chain = {f"t{i}": [f"t{i + 1}"] for i in range(n)}
    assert find_cycle(chain) is None
    chain[f"t{n}"] = ["t0"]
    cycle = find_cycle(chain)
    assert cycle is not None
    assert (cycle[0], cycle[-1], len(cycle)) == ("t0", "t0", n + 2)


def test_graph_links_upstream_and_downstream() -> None:
    graph = Graph.from_tasks(_tasks({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}))
    assert graph.upstream["d"] == ("b", "c")
    assert graph.downstream["a"] == ("b", "c")
    assert graph.roots == ("a",)
    assert graph.leaves == ("d",)
    assert len(graph) == 4


def test_order_is_topological_and_prefers_declaration_order() -> None:
    graph = Graph.from_tasks(
        _tasks({"report": ["clean"], "fetch": [], "clean": ["fetch"], "x": []})
    )
    assert graph.order == ("fetch", "clean", "report", "x")


def test_order_of_independent_tasks_is_declaration_order() -> None:
    graph = Graph.from_tasks(_tasks({"c": [], "a": [], "b": []}))
    assert graph.order == ("c", "a", "b")


def test_ancestors_and_descendants_are_transitive() -> None:
    graph = Graph.from_tasks(_tasks({"a": [], "b": ["a"], "c": ["b"], "d": []}))
    assert graph.ancestors("c") == {"a", "b"}
    assert graph.descendants("a") == {"b", "c"}
    assert graph.ancestors("d") == set()


def test_ancestors_of_an_unknown_task_raise_key_error() -> None:
    graph = Graph.from_tasks(_tasks({"a": []}))
    with pytest.raises(KeyError):
        graph.ancestors("nope")


def test_graph_refuses_a_cycle() -> None:
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> a"):
        Graph.from_edges([("a", ["b"]), ("b", ["a"])])


def test_graph_of_a_long_chain_orders_every_task() -> None:
    n = 10_000
    graph = Graph.from_edges((f"t{i}", [f"t{i - 1}"] if i else []) for i in range(n))
    assert graph.order == tuple(f"t{i}" for i in range(n))
    assert len(graph.ancestors(f"t{n - 1}")) == n - 1


def test_order_of_tasks_declared_in_dependency_order_is_declaration_order() -> None:
    deps = {"a": [], "c": ["a"], "b": [], "d": ["b", "c"]}
    assert find_cycle(deps) is None
    assert Graph.from_tasks(_tasks(deps)).order == ("a", "c", "b", "d")


def test_a_dependency_declared_later_still_orders_and_cycles_are_still_found() -> None:
    assert Graph.from_tasks(_tasks({"b": ["a"], "a": []})).order == ("a", "b")
    assert find_cycle({"a": [], "b": ["c"], "c": ["b"]}) == ["b", "c", "b"]
