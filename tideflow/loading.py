"""Reading manifests: YAML files and directories -> ``Workflow`` / ``WorkflowRun`` models.

The CLI (``apply -f``, ``validate -f``), the HTTP API and the Python builder
come through here, so every front door reports the same problems in the same
words: YAML syntax errors with line and column, and pydantic's errors turned
into Kubernetes-style field paths (``spec.tasks[2].dependsOn``) with plain
messages. All problems in all files and documents are collected before
:class:`~tideflow.errors.ValidationError` is raised.

Documents are read the way Kubernetes reads them: unquoted dates such as
``2026-11-30`` stay strings (YAML 1.1 timestamps are not resolved), and a key
repeated in one mapping is an error rather than silently overwritten.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic_core import ErrorDetails

from tideflow.errors import Problem, ValidationError
from tideflow.model import API_VERSION, Manifest, Workflow, WorkflowRun, to_document

__all__ = ["dump_yaml", "load_path", "load_text", "parse_manifest", "problems_from_pydantic"]

_KINDS: dict[str, type[Workflow] | type[WorkflowRun]] = {
    "Workflow": Workflow,
    "WorkflowRun": WorkflowRun,
}
_SUFFIXES = (".yaml", ".yml")


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


class _Loader(yaml.SafeLoader):
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


def load_path(path: Path | str) -> list[tuple[str, Manifest]]:
    """Read a YAML file, or every ``*.yaml`` / ``*.yml`` file under a directory.

    Files of a directory are read recursively in sorted order. Each manifest
    comes with its source label: the file path as found (``daily.yaml``), with
    the 0-based document index for multi-document files (``daily.yaml[2]`` is
    the third document).

    Raises:
        ValidationError: every problem of every file and document.
    """
    manifests, problems, _ = read_path(path)
    if problems:
        raise ValidationError(problems)
    return manifests


def read_path(
    path: Path | str,
) -> tuple[list[tuple[str, Manifest]], list[Problem], list[tuple[str, Manifest]]]:
    """Like :func:`load_path`, but returns instead of raising: the manifests that
    parsed, every problem, and *salvaged* manifests — documents that failed the
    schema only in fields that can be dropped, parsed without them. Salvaged
    manifests are good for nothing but further checks, so that one run of
    ``validate`` reports a document's schema and semantic problems together."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
        if not files:
            return [], [Problem("", "no *.yaml or *.yml files found", _label(root))], []
    elif root.is_file():
        files = [root]
    else:
        return [], [Problem("", "no such file or directory", _label(root))], []
    manifests: list[tuple[str, Manifest]] = []
    salvaged: list[tuple[str, Manifest]] = []
    problems: list[Problem] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem("", f"cannot read file: {exc}", _label(file)))
            continue
        found, errors, partial = _load(text, _label(file))
        manifests.extend(found)
        problems.extend(errors)
        salvaged.extend(partial)
    return manifests, problems, salvaged


def _label(path: Path) -> str:
    """A file's name as the user thinks of it: relative to the working directory if inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_text(text: str, source: str) -> list[Manifest]:
    """Parse every manifest in a (multi-document) YAML string.

    Raises:
        ValidationError: every problem of every document.
    """
    found, problems, _ = _load(text, source)
    if problems:
        raise ValidationError(problems)
    return [manifest for _, manifest in found]


def parse_manifest(doc: Any, source: str = "") -> Manifest:
    """Turn one already-parsed document into its model.

    Raises:
        ValidationError: the document is not a mapping, has an unknown
            ``apiVersion`` or ``kind``, or fails the model's checks.
    """
    manifest, problems = _parse(doc, source)
    if manifest is None:
        raise ValidationError(problems)
    return manifest


def dump_yaml(manifests: Iterable[Manifest]) -> str:
    """Manifests as multi-document YAML, keys in model order, defaults omitted."""
    return "---\n".join(
        yaml.safe_dump(to_document(m), sort_keys=False, allow_unicode=True) for m in manifests
    )


def problems_from_pydantic(
    error: pydantic.ValidationError, model: type[pydantic.BaseModel], source: str = ""
) -> list[Problem]:
    """Translate pydantic's errors into problems with field paths and plain messages."""
    located = [(_walk(model, d["loc"]), d) for d in error.errors(include_url=False)]
    # pydantic reports one error per member of a union such as ``str | list``.
    type_errors: dict[str, list[str]] = {}
    for (path, _), detail in located:
        if detail["type"].endswith("_type"):
            type_errors.setdefault(path, []).append(_message(detail).removeprefix("must be "))
    problems: dict[tuple[str, str], None] = {}  # ordered and without repeats
    for (path, parent), detail in located:
        if detail["type"] == "extra_forbidden":
            field = str(detail["loc"][-1])
            hint = _suggest(field, _aliases(parent)) if parent is not None else ""
            message = f"unknown field{hint}"
        elif detail["type"].endswith("_type") and len(type_errors[path]) > 1:
            message = f"must be {' or '.join(dict.fromkeys(type_errors[path]))}"
        else:
            message = _message(detail)
        problems[(path, message)] = None
    return [Problem(path, message, source) for path, message in problems]


# --------------------------------------------------------------------------- internals


def _load(
    text: str, source: str
) -> tuple[list[tuple[str, Manifest]], list[Problem], list[tuple[str, Manifest]]]:
    docs: list[Any] = []
    problems: list[Problem] = []
    try:
        for doc in yaml.load_all(text, Loader=_Loader):
            docs.append(doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        message = exc.problem or exc.context or "invalid YAML"
        problems.append(Problem(where, message, source))
    except yaml.YAMLError as exc:
        problems.append(Problem("", f"invalid YAML: {exc}", source))
    present = [(i, doc) for i, doc in enumerate(docs) if doc is not None]
    if not present and not problems:
        problems.append(Problem("", "file is empty: no manifest found", source))
    manifests: list[tuple[str, Manifest]] = []
    salvaged: list[tuple[str, Manifest]] = []
    for i, doc in present:
        label = source if len(present) == 1 and not problems else f"{source}[{i}]"
        manifest, errors = _parse(doc, label)
        problems.extend(errors)
        if manifest is not None:
            manifests.append((label, manifest))
        elif (partial := _salvage(doc, label)) is not None:
            salvaged.append((label, partial))
    return manifests, problems, salvaged


def _salvage(doc: Any, source: str) -> Manifest | None:
    """Parse ``doc`` once more without the fields the schema refused, if that is
    possible without inventing anything that later checks would trip over: an
    invalid ``metadata.name`` is replaced, other refused fields are dropped when
    they are optional; anything else (a refused task name, a missing required
    field, a bad list item) gives up."""
    if not isinstance(doc, dict) or doc.get("kind") not in _KINDS:
        return None
    model = _KINDS[str(doc["kind"])]
    data = copy.deepcopy(doc)
    for _ in range(3):  # dropping one field may reveal another error under it
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            for detail in exc.errors(include_url=False):
                if not _drop(data, detail["loc"], detail["type"], source):
                    return None
    return None


def _drop(data: dict[str, Any], loc: tuple[int | str, ...], kind: str, source: str) -> bool:
    """Remove (or, for ``metadata.name``, replace) the field at ``loc``; False if unsafe."""
    if kind == "missing" or not loc:
        return False
    # A model-level error (e.g. "exactly one of function, command") has no field to drop.
    path = [
        part
        for part in loc
        if not (isinstance(part, str) and part.startswith(("function-", "model")))
    ]
    parent: Any = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = path[-1]
    if not isinstance(parent, dict) or not isinstance(last, str) or last not in parent:
        return False
    if path == ["metadata", "name"]:
        parent[last] = f"invalid-name-{abs(hash(source)) % 10**8}"
        return True
    if last == "name":
        return False  # a task's name: dependents would report it as unknown
    del parent[last]
    return True


def _parse(doc: Any, source: str) -> tuple[Manifest | None, list[Problem]]:
    if not isinstance(doc, dict):
        found = "a list" if isinstance(doc, list) else f"a {type(doc).__name__}"
        return None, [Problem("", f"a manifest must be a mapping, not {found}", source)]
    problems: list[Problem] = []
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version is None:
        problems.append(Problem("apiVersion", "required field is missing", source))
    elif api_version != API_VERSION:
        problems.append(Problem("apiVersion", f'"{api_version}" is not {API_VERSION}', source))
    if kind is None:
        problems.append(Problem("kind", "required field is missing", source))
    elif not isinstance(kind, str) or kind not in _KINDS:
        problems.append(Problem("kind", f'"{kind}" is not one of {", ".join(_KINDS)}', source))
    if problems:
        return None, problems
    model = _KINDS[str(kind)]
    try:
        return model.model_validate(doc), []
    except pydantic.ValidationError as exc:
        return None, problems_from_pydantic(exc, model, source)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][\w-]*$")


def _walk(
    model: type[pydantic.BaseModel], loc: Sequence[int | str]
) -> tuple[str, type[pydantic.BaseModel] | None]:
    """The field path of an error location, and the model holding its last element.

    Follows the model's type annotations along ``loc`` so that the tags
    pydantic inserts for union members (``forEach.str``) are dropped.
    """
    path = ""
    current: Any = model
    parent: type[pydantic.BaseModel] | None = None
    for element in loc:
        current = _strip_optional(current)
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            parent = current
            field = _field(current, str(element))
            current = field.annotation if field is not None else Any
        elif _is_union(current) and isinstance(element, str):
            current = Any  # a union member tag, not part of the document
            continue
        else:
            parent = None
            origin, args = typing.get_origin(current), typing.get_args(current)
            current = args[-1] if origin in (list, dict) and args else Any
        if isinstance(element, int) and not isinstance(element, bool):
            path += f"[{element}]"
        elif _PLAIN_KEY.match(str(element)):
            path += f".{element}" if path else str(element)
        else:
            path += f'["{element}"]'
    return path, parent


def _strip_optional(annotation: Any) -> Any:
    if _is_union(annotation):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _field(model: type[pydantic.BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _aliases(model: type[pydantic.BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.7)
    return f' (did you mean "{close[0]}"?)' if close else ""


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "datetime_type": "a date-time such as 2026-11-30T08:30:00Z",
    "datetime_parsing": "a date-time such as 2026-11-30T08:30:00Z",
    "datetime_from_date_parsing": "a date-time such as 2026-11-30T08:30:00Z",
}

_BOUNDS = {
    "greater_than": ("gt", "must be greater than {}"),
    "greater_than_equal": ("ge", "must be at least {}"),
    "less_than": ("lt", "must be less than {}"),
    "less_than_equal": ("le", "must be at most {}"),
}


def _message(detail: ErrorDetails) -> str:
    kind, ctx = detail["type"], detail.get("ctx", {})
    if kind == "missing":
        return "required field is missing"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}"
    if kind in _BOUNDS:
        key, template = _BOUNDS[kind]
        return template.format(_number(ctx.get(key)))
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f'"{detail["input"]}" is not one of {expected}'
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_short":
        n = ctx.get("min_length")
        return "must not be empty" if n == 1 else f"must have at least {n} items"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        return str(error) if error is not None else detail["msg"]
    message = detail["msg"].removeprefix("Input should be ")
    return message if message == detail["msg"] else f"must be {message}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
