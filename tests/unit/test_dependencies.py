"""The suite runs against dependency versions inside the ranges pyproject.toml declares.

A new major release of a dependency is an upgrade to make on purpose: the
upper bounds keep it out until the suite has proven it, and this test fails if
the environment under test ever strays outside the declared ranges.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = [
    Requirement(text)
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
]


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=lambda r: r.name)
def test_the_installed_version_is_inside_the_declared_range(requirement: Requirement) -> None:
    assert requirement.specifier, f"{requirement.name} has no version range"
    assert any(spec.operator == "<" for spec in requirement.specifier), (
        f"{requirement.name} has no upper bound"
    )
    installed = metadata.version(requirement.name)
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is outside {requirement.specifier}"
    )
