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

Whole validation
----------------

``tideflow validate`` reports every problem of a document in one run, schema
and semantic together. Semantic checks
(:func:`tideflow.definition.validation.validate_workflow`) need a model, and a document
that fails the schema has none, so :func:`read_path` does two things for it:

1. **Salvage.** The document is parsed again, repaired until the schema takes
   it, and the result (a *salvaged* manifest, returned beside the good ones)
   goes through the semantic checks like any other. A repair must not make
   those checks report something the document does not have:

   * a refused field is dropped (its default takes over); a refused item of a
     list drops the list; a missing field drops the mapping holding it
     (``container`` without ``image``), one level per round;
   * a field whose absence would make the checks report consequences rather
     than problems is neutralised instead: a refused ``forEach`` becomes
     ``[]`` (so ``item`` stays defined); a refused ``args`` or ``executor``
     also takes the task's function out of the checks (no "missing required
     argument", no import of code meant for a container); anything refused
     under ``compensate`` drops ``compensate``; a refused parameter ``type``
     drops that parameter's ``default`` and ``enum`` (they were checked
     against it); a refused ``metadata.name`` or ``namespace`` is parsed as
     a placeholder and put back afterwards;
   * a task-level error (``exactly one of function, command or container``,
     e.g. once a malformed ``function`` was dropped; ``container tasks need
     executor: kubernetes``) sets the task's kind fields aside: the task is
     parsed with a placeholder command, then gets its own ``command`` and
     ``container`` back (their templates are checked like every other
     field). Only the kind-dependent check, importing ``function`` and
     matching its signature against ``args``, is skipped for that task;
   * what cannot be repaired without changing what other checks see ends
     the salvage: a refused or missing task or parameter ``name`` (dependents
     would report it unknown), a refused ``dependsOn`` or ``spec.params``
     (templates would be reported as using tasks that are not upstream or
     parameters that are not declared), a task or parameter that is not a
     mapping, a refused ``spec.tasks``, a missing ``metadata`` or ``spec``.

2. **Templates on the raw document.** Static template problems (syntax
   errors, Python internals: :func:`tideflow.definition.templating.inspect_templates`)
   depend on nothing but the string, so for every document that failed the
   schema they are also looked for in its raw data, in the fields the engine
   renders (task ``args``, ``command``, ``env``, ``workingDir``,
   ``container.command``/``args``/``env``, ``forEach``, ``compensate.args``,
   and parameter ``default``). Those the salvaged manifest's checks report
   too (same path and message) are left to them; the others, in fields the
   salvage dropped or in documents it gave up on, come with the schema
   problems. So each problem is reported once, whatever was salvaged.

A document whose ``apiVersion`` or ``kind`` is missing or unknown gets that
problem only, as in Kubernetes: what the rest means depends on them.

Why this design: each rule keeps one home. The schema lives in the models,
the semantic rules in :mod:`tideflow.definition.validation`; the loader only decides
which parts of a broken document are safe to check, and only static template
analysis, which needs no model, runs on raw data. Running the semantic checks
on raw dictionaries instead would duplicate every rule; a second, lenient set
of models would duplicate the schema.

:func:`load_checked` is the whole pipeline: read, salvage, check, and order
the problems file by file, then by document, then schema before semantic
(each as found). Front doors that call :func:`read_path` and
:func:`tideflow.definition.validation.check` themselves get the same problems.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic_core import ErrorDetails

from tideflow.definition import templating
from tideflow.definition.validation import check, validate_workflow
from tideflow.definition.yamlsafe import ManifestLoader
from tideflow.errors import Problem, ValidationError, did_you_mean
from tideflow.model import (
    API_VERSION,
    ContainerSpec,
    Manifest,
    Workflow,
    WorkflowRun,
    to_document,
)

__all__ = [
    "dump_yaml",
    "load_checked",
    "load_path",
    "load_text",
    "parse_manifest",
    "problems_from_pydantic",
    "read_path",
]

_KINDS: dict[str, type[Workflow] | type[WorkflowRun]] = {
    "Workflow": Workflow,
    "WorkflowRun": WorkflowRun,
}
_SUFFIXES = (".yaml", ".yml")

Loc = tuple[int | str, ...]
"""A location in a document: mapping keys and list indexes."""


def load_path(path: Path | str) -> list[tuple[str, Manifest]]:
    """Read a YAML file, or every ``*.yaml`` / ``*.yml`` file under a directory.

    Files of a directory are read recursively in sorted order. Each manifest
    comes with its source label: the file path as found (``daily.yaml``), with
    the 0-based document index for multi-document files (``daily.yaml[2]`` is
    the third document).

    Checks the schema (and, in a document that fails it, the templates'
    syntax); :func:`load_checked` runs the semantic checks too.

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
    """Like :func:`load_path`, but returns instead of raising.

    Returns:
        The manifests that parsed; every problem found without the semantic
        checks (YAML, schema, and the static template problems of documents
        that failed the schema, unless their salvaged manifest reports them);
        and the *salvaged* manifests: documents that failed the schema,
        repaired as the module docstring describes. Salvaged manifests are
        good for nothing but :func:`tideflow.definition.validation.check`, so that one
        run of ``validate`` reports a document's schema and semantic problems
        together, each once.
    """
    reading = _Reading()
    reading.read(path)
    return reading.manifests, reading.problems, reading.salvaged


def load_checked(
    paths: Iterable[Path | str], *, resolve_functions: bool = True
) -> list[tuple[str, Manifest]]:
    """Read manifests and check them as a set: ``validate -f`` and ``apply -f`` in one call.

    Every path is read as :func:`read_path` reads it; the manifests and the
    salvaged ones then go through :func:`tideflow.definition.validation.check` together.

    Args:
        paths: files or directories, read in the order given.
        resolve_functions: import ``function`` references and check their
            signatures (see :func:`tideflow.definition.validation.validate_workflow`).

    Returns:
        The valid manifests with their source labels, in reading order.

    Raises:
        ValidationError: every problem, each once, ordered file by file, then
            by document (``daily.yaml[2]`` before ``daily.yaml[10]``), then
            schema problems before semantic ones, each group as found.
    """
    reading = _Reading()
    for path in paths:
        reading.read(path)
    problems = list(reading.problems)
    try:
        check(reading.manifests + reading.salvaged, resolve_functions=resolve_functions)
    except ValidationError as exc:
        problems += exc.problems
    if problems:
        last = len(reading.sources)
        unique = dict.fromkeys(problems)  # ordered and without repeats
        raise ValidationError(sorted(unique, key=lambda p: reading.sources.get(p.source, last)))
    return reading.manifests


def _label(path: Path) -> str:
    """A file's name as the user thinks of it: relative to the working directory if inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_text(text: str, source: str) -> list[Manifest]:
    """Parse every manifest in a (multi-document) YAML string, as :func:`load_path` does.

    Raises:
        ValidationError: every problem of every document.
    """
    reading = _Reading()
    reading.load(text, source)
    if reading.problems:
        raise ValidationError(reading.problems)
    return [manifest for _, manifest in reading.manifests]


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


# --------------------------------------------------------------------------- reading


@dataclasses.dataclass
class _Reading:
    """What reading files and documents produced so far, in reading order."""

    manifests: list[tuple[str, Manifest]] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    salvaged: list[tuple[str, Manifest]] = dataclasses.field(default_factory=list)
    sources: dict[str, int] = dataclasses.field(default_factory=dict)
    """Every source label (file or document) -> its position in reading order."""

    def problem(self, message: str, source: str, path: str = "") -> None:
        self.sources.setdefault(source, len(self.sources))
        self.problems.append(Problem(path, message, source))

    def read(self, path: Path | str) -> None:
        """Read a file, or every manifest file under a directory."""
        root = Path(path)
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
            if not files:
                self.problem("no *.yaml or *.yml files found", _label(root))
        elif root.is_file():
            files = [root]
        else:
            files = []
            self.problem("no such file or directory", _label(root))
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.problem(f"cannot read file: {exc}", _label(file))
                continue
            self.load(text, _label(file))

    def load(self, text: str, source: str) -> None:
        """Read every document of one (multi-document) YAML text."""
        docs: list[Any] = []
        broken = False
        try:
            for doc in yaml.load_all(text, Loader=ManifestLoader):
                docs.append(doc)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            self.problem(exc.problem or exc.context or "invalid YAML", source, where)
            broken = True
        except yaml.YAMLError as exc:
            self.problem(f"invalid YAML: {exc}", source)
            broken = True
        present = [(i, doc) for i, doc in enumerate(docs) if doc is not None]
        if not present and not broken:
            self.problem("file is empty: no manifest found", source)
        for i, doc in present:
            label = source if len(present) == 1 and not broken else f"{source}[{i}]"
            self.sources.setdefault(label, len(self.sources))
            manifest, errors = _parse(doc, label)
            self.problems += errors
            if manifest is not None:
                self.manifests.append((label, manifest))
                continue
            if not _identified(doc):
                continue  # like Kubernetes: a document of unknown apiVersion or kind is not read
            partial = _salvage(doc)
            if partial is not None:
                self.salvaged.append((label, partial))
            self.problems += _unchecked_template_problems(doc, partial, label)


# --------------------------------------------------------------------------- salvage

# (alias, python name) of the task fields the engine renders, in the order
# tideflow.definition.validation checks them.
_TASK_TEMPLATED = (
    ("args", "args"),
    ("command", "command"),
    ("env", "env"),
    ("workingDir", "working_dir"),
)
_CONTAINER_TEMPLATED = ("command", "args", "env")
_KIND_FIELDS = ("function", "command", "container")
_PLACEHOLDER_COMMAND = ["salvaged"]
_ROUNDS = 12  # repairs cascade one level per round; documents are shallow
_UNNAMED = itertools.count(1)  # placeholders for names that are not even strings


def _identified(doc: Any) -> bool:
    """True if ``doc`` is a mapping with this format's ``apiVersion`` and a known ``kind``."""
    return (
        isinstance(doc, dict) and doc.get("apiVersion") == API_VERSION and doc.get("kind") in _KINDS
    )


def _unchecked_template_problems(doc: Any, salvaged: Manifest | None, source: str) -> list[Problem]:
    """Static template problems of a document that failed the schema, found on its raw
    data, minus those the salvaged manifest's semantic checks will report."""
    found = list(_raw_template_problems(doc))
    if not found:
        return []
    if isinstance(salvaged, Workflow):
        reported = validate_workflow(salvaged, resolve_functions=False)
        covered = {(p.path, p.message) for p in reported}
        found = [p for p in found if (p.path, p.message) not in covered]
    return [dataclasses.replace(p, source=source) for p in found]


def _raw_template_problems(doc: Any) -> Iterator[Problem]:
    """Syntax errors and Python internals in every rendered field of a raw document."""
    if not isinstance(doc, dict) or doc.get("kind") != "Workflow":
        return
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return
    fields: list[tuple[str, Any]] = []
    params = spec.get("params")
    for i, param in enumerate(params if isinstance(params, list) else ()):
        if isinstance(param, dict):
            fields.append((f"spec.params[{i}].default", param.get("default")))
    tasks = spec.get("tasks")
    for i, task in enumerate(tasks if isinstance(tasks, list) else ()):
        if isinstance(task, dict):
            fields += _raw_task_fields(task, f"spec.tasks[{i}]")
    for path, value in fields:
        yield from templating.template_problems(value, path)


def _raw_task_fields(task: dict[Any, Any], path: str) -> list[tuple[str, Any]]:
    fields = [(f"{path}.{alias}", _get(task, alias, name)) for alias, name in _TASK_TEMPLATED]
    container = task.get("container")
    if isinstance(container, dict):
        fields += [(f"{path}.container.{key}", container.get(key)) for key in _CONTAINER_TEMPLATED]
    fields.append((f"{path}.forEach", _get(task, "forEach", "for_each")))
    compensate = task.get("compensate")
    if isinstance(compensate, dict):
        fields.append((f"{path}.compensate.args", compensate.get("args")))
    return fields


def _get(mapping: dict[Any, Any], alias: str, name: str) -> Any:
    """A field given by its YAML alias or its Python name (the models accept both)."""
    return mapping[alias] if alias in mapping else mapping.get(name)


def _salvage(doc: Any) -> Manifest | None:
    """The document parsed once more, repaired as the module docstring describes, or None."""
    if not _identified(doc):
        return None
    model = _KINDS[str(doc["kind"])]
    repair = _Repair(copy.deepcopy(doc))
    for _ in range(_ROUNDS):  # a repair may reveal another error under it
        try:
            manifest = model.model_validate(repair.data)
        except pydantic.ValidationError as exc:
            repair.dropped.clear()
            for detail in exc.errors(include_url=False):
                if not repair.fix(_document_loc(model, detail["loc"]), detail["type"]):
                    return None
        else:
            return repair.finish(manifest)
    return None


@dataclasses.dataclass
class _Repair:
    """One document's salvage: the data being repaired and what was set aside."""

    data: dict[Any, Any]
    kinds: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Task index -> the kind fields (function, command, container) set aside."""
    no_function: set[int] = dataclasses.field(default_factory=set)
    """Tasks whose function is not imported nor matched against ``args``."""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    """``name`` / ``namespace`` -> the refused value, put back once parsed."""
    dropped: set[Loc] = dataclasses.field(default_factory=set)
    """What this round removed: errors under it are dealt with."""

    def fix(self, loc: Loc, kind: str) -> bool:
        """Repair the error at document location ``loc``; False if it cannot be done safely."""
        if "[key]" in loc:  # a refused mapping key: the entry goes
            loc = loc[: loc.index("[key]")]
        if any(loc[:n] in self.dropped for n in range(1, len(loc) + 1)):
            return True
        if len(loc) == 3 and loc[:2] == ("spec", "tasks") and isinstance(loc[2], int):
            return kind in ("value_error", "assertion_error") and self._set_kind_aside(loc[2])
        if loc in (("metadata", "name"), ("metadata", "namespace")):
            return self._set_name_aside(str(loc[1]))
        if loc and loc[-1] == "name":
            return False  # a task's or parameter's: dependents would report it unknown
        target = loc[:-1] if kind == "missing" else loc
        while target and isinstance(target[-1], int):
            target = target[:-1]  # an item of a list: the list goes
        return self._drop(target)

    def _drop(self, target: Loc) -> bool:
        if not target or target in (("spec", "tasks"), ("spec", "params")):
            return False
        task = _task_of(target)
        if task is not None and len(target) > 3:
            field = target[3]
            if field in ("dependsOn", "depends_on"):
                return False
            if field in ("forEach", "for_each"):
                return self._replace(target, [])  # keeps item and index defined
            if field == "compensate":
                target = target[:4]
            elif field in ("args", "executor") and len(target) == 4:
                self.no_function.add(task)
        if len(target) == 4 and target[:2] == ("spec", "params") and target[3] == "type":
            return self._drop_param_type(target)
        return self._remove(target)

    def _drop_param_type(self, target: Loc) -> bool:
        param = _at(self.data, target[:3])
        if not isinstance(param, dict):
            return False
        if "default" in param and "required" not in param:
            param["required"] = False  # as declared: it had a default
        for key in ("type", "default", "enum"):
            param.pop(key, None)
            self.dropped.add((*target[:3], key))
        return True

    def _set_name_aside(self, key: str) -> bool:
        """Parse with a valid name, then put the refused one back (so that two documents
        reusing one refused name are still reported as the same object defined twice)."""
        metadata = self.data.get("metadata")
        if not isinstance(metadata, dict) or key in self.metadata:
            return False
        value = metadata.get(key)
        self.metadata[key] = value if isinstance(value, str) else f"({next(_UNNAMED)})"
        metadata[key] = "salvaged"
        return True

    def _set_kind_aside(self, index: int) -> bool:
        task = _at(self.data, ("spec", "tasks", index))
        if not isinstance(task, dict) or index in self.kinds:
            return False
        self.kinds[index] = {key: task.pop(key) for key in _KIND_FIELDS if key in task}
        task["command"] = list(_PLACEHOLDER_COMMAND)
        self.no_function.add(index)
        return True

    def _replace(self, target: Loc, value: Any) -> bool:
        parent = _at(self.data, target[:-1])
        if not isinstance(parent, dict) or target[-1] not in parent:
            return False
        parent[target[-1]] = value
        self.dropped.add(target)
        return True

    def _remove(self, target: Loc) -> bool:
        parent = _at(self.data, target[:-1])
        if not isinstance(parent, dict) or target[-1] not in parent:
            return False
        del parent[target[-1]]
        self.dropped.add(target)
        return True

    def finish(self, manifest: Manifest) -> Manifest:
        """Put back what was set aside for parsing: refused names, tasks' own command and
        container; and take out the functions that must not be checked."""
        if self.metadata:
            metadata = manifest.metadata.model_copy(update=self.metadata)
            manifest = manifest.model_copy(update={"metadata": metadata})
        if not isinstance(manifest, Workflow) or not self.no_function:
            return manifest
        tasks = list(manifest.spec.tasks)
        for index in sorted(self.no_function):
            update: dict[str, Any] = {"function": None}
            if index in self.kinds:
                kept = self.kinds[index]
                update["command"] = kept.get("command")
                update["container"] = _container(kept.get("container"))
            tasks[index] = tasks[index].model_copy(update=update)
        spec = manifest.spec.model_copy(update={"tasks": tasks})
        return manifest.model_copy(update={"spec": spec})


def _task_of(loc: Loc) -> int | None:
    """The index of the task ``loc`` is inside of, if any."""
    if len(loc) >= 3 and loc[:2] == ("spec", "tasks") and isinstance(loc[2], int):
        return loc[2]
    return None


def _at(data: Any, loc: Loc) -> Any:
    """The value at ``loc`` in ``data``, or None when the path does not exist."""
    for part in loc:
        if not isinstance(data, dict | list):
            return None
        try:
            data = data[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _container(value: Any) -> ContainerSpec | None:
    """A container mapping that passed the schema on its own, as its model."""
    if value is None:
        return None
    try:
        return ContainerSpec.model_validate(value)
    except pydantic.ValidationError:
        return None


# --------------------------------------------------------------------------- schema


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
    """The field path of an error location, and the model holding its last element."""
    path = ""
    parent: type[pydantic.BaseModel] | None = None
    for element, holder in _steps(model, loc):
        parent = holder
        if isinstance(element, int) and not isinstance(element, bool):
            path += f"[{element}]"
        elif _PLAIN_KEY.match(str(element)):
            path += f".{element}" if path else str(element)
        else:
            path += f'["{element}"]'
    return path, parent


def _document_loc(model: type[pydantic.BaseModel], loc: Sequence[int | str]) -> Loc:
    """An error location as keys and indexes of the document (union member tags left out)."""
    return tuple(element for element, _ in _steps(model, loc))


def _steps(
    model: type[pydantic.BaseModel], loc: Sequence[int | str]
) -> Iterator[tuple[int | str, type[pydantic.BaseModel] | None]]:
    """The elements of ``loc`` that are part of the document, each with the model holding it.

    Follows the model's type annotations along ``loc`` so that the tags
    pydantic inserts for union members (``forEach.str``) are dropped.
    """
    current: Any = model
    for element in loc:
        current = _strip_optional(current)
        parent: type[pydantic.BaseModel] | None = None
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            parent = current
            field = _field(current, str(element))
            current = field.annotation if field is not None else Any
        elif _is_union(current) and isinstance(element, str):
            current = Any  # a union member tag, not part of the document
            continue
        else:
            origin, args = typing.get_origin(current), typing.get_args(current)
            current = args[-1] if origin in (list, dict) and args else Any
        yield element, parent


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


_suggest = did_you_mean


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
