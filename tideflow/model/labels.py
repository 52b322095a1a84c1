"""Label selectors, as ``kubectl get -l`` takes them.

``team=data,env!=prod,tier,!legacy`` selects objects whose labels have
``team`` equal to ``data``, ``env`` absent or not ``prod``, a ``tier`` label
and no ``legacy`` label. ``key==value`` is accepted for ``key=value``, and
``key in (a,b)`` / ``key notin (a,b)`` select by set, as in Kubernetes.

Callers: the CLI (``get -l``), the store (which filters runs and workflows by
a selector), and later the HTTP API (``labelSelector=``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tideflow.errors import Problem, ValidationError

__all__ = ["LabelSelector", "Requirement"]

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]

# A label key: an optional DNS-subdomain prefix and a name, as in Kubernetes.
_KEY = r"(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)$")
_EQUALITY = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|!=|=)\s*(?P<value>{_VALUE})$")
_EXISTS = re.compile(rf"^(?P<neg>!?)\s*(?P<key>{_KEY})$")
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause of a selector."""

    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "exists":
            return value is not None
        if self.operator == "!exists":
            return value is None
        if self.operator in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # != and notin, as in Kubernetes


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """All requirements must hold (clauses are joined by commas)."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None, *, where: str = "-l") -> LabelSelector:
        """Parse ``text``; an empty or missing selector selects everything.

        Raises:
            ValidationError: a clause is malformed; the problem names the clause.
        """
        if not text or not text.strip():
            return cls()
        requirements: list[Requirement] = []
        problems: list[Problem] = []
        for clause in _clauses(text):
            requirement = _requirement(clause)
            if requirement is None:
                problems.append(
                    Problem(
                        where,
                        f'invalid label selector clause "{clause}"; expected key=value, '
                        "key!=value, key, !key, key in (a,b) or key notin (a,b)",
                    )
                )
            else:
                requirements.append(requirement)
        if problems:
            raise ValidationError(problems)
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        found = labels or {}
        return all(requirement.matches(found) for requirement in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _clauses(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )``."""
    clauses: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            clauses.append(text[start:i].strip())
            start = i + 1
    clauses.append(text[start:].strip())
    return clauses


def _requirement(clause: str) -> Requirement | None:
    if match := _SET.match(clause):
        values = [v.strip() for v in match["values"].split(",")]
        if not values or not all(v and _VALUE_ONLY.match(v) for v in values):
            return None
        op: Operator = "in" if match["op"] == "in" else "notin"
        return Requirement(match["key"], op, frozenset(values))
    if match := _EQUALITY.match(clause):
        op = "!=" if match["op"] == "!=" else "="
        return Requirement(match["key"], op, frozenset({match["value"]}))
    if match := _EXISTS.match(clause):
        return Requirement(match["key"], "!exists" if match["neg"] else "exists")
    return None
