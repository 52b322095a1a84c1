"""The YAML dialect of manifests and parameter files: safe, YAML 1.2 booleans, no timestamps."""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["ManifestLoader"]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# YAML 1.2 booleans only: with YAML 1.1's, a hook's ``on:`` key would read as True.
_BOOL_1_2 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def _resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [
            (tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)
        ]
        if first in "tTfF":
            kept.append((_BOOL_TAG, _BOOL_1_2))
        if kept:
            table[first] = kept
    return table


class ManifestLoader(yaml.SafeLoader):
    """Safe loader reading YAML the way Kubernetes manifests are read.

    No timestamps (``2026-11-30`` stays a string), YAML 1.2 booleans (``on``,
    ``yes``, ``off`` stay strings) and a repeated key is an error.
    """

    yaml_implicit_resolvers = _resolvers()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    problem=f'duplicate key "{key}"', problem_mark=key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
