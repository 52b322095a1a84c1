"""Reading manifests: YAML files, directories and documents -> models, with readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tideflow.definition.loading import (
    dump_yaml,
    load_checked,
    load_path,
    load_text,
    parse_manifest,
    read_path,
)
from tideflow.definition.validation import check, validate_workflow
from tideflow.errors import Problem, ValidationError
from tideflow.model import Workflow, WorkflowRun

FIXTURES = Path(__file__).parent / "fixtures"

HEAD = "apiVersion: tideflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: daily}\n"


def _problems(text: str, source: str = "daily.yaml") -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_text(text, source)
    return [str(p) for p in caught.value.problems]


def _workflow(tasks: str) -> str:
    return HEAD + "spec:\n  tasks:\n" + tasks


def test_a_multi_document_file_loads_with_indexed_sources() -> None:
    loaded = load_path(FIXTURES / "daily.yaml")
    assert [(source.rsplit("/", 1)[-1], type(m)) for source, m in loaded] == [
        ("daily.yaml[0]", Workflow),
        ("daily.yaml[1]", WorkflowRun),
    ]


def test_a_single_document_file_is_labelled_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(_workflow("    - {name: a, command: [echo]}\n"))
    [(source, manifest)] = load_path(path)
    assert source == str(path)
    assert isinstance(manifest, Workflow)


def test_yaml_round_trips_through_the_models() -> None:
    first = [m for _, m in load_path(FIXTURES / "daily.yaml")]
    text = dump_yaml(first)
    again = load_text(text, "dumped.yaml")
    assert again == first
    assert dump_yaml(again) == text
    assert text.startswith("apiVersion: tideflow.dev/v1alpha1\nkind: Workflow\nmetadata:\n")
    assert "\n---\napiVersion: tideflow.dev/v1alpha1\nkind: WorkflowRun\n" in text


def test_unquoted_dates_stay_strings_as_in_kubernetes() -> None:
    run = load_path(FIXTURES / "daily.yaml")[1][1]
    assert isinstance(run, WorkflowRun)
    assert run.spec.params == {"trade_date": "2026-11-30"}


def test_a_hook_on_key_is_not_read_as_a_yaml_11_boolean() -> None:
    workflow = load_path(FIXTURES / "daily.yaml")[0][1]
    assert isinstance(workflow, Workflow)
    assert workflow.spec.hooks is not None
    assert workflow.spec.hooks[0].on == ["RunFailed", "RunSucceeded"]


def test_a_directory_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.yml").write_text(_workflow("    - {name: a, command: [echo]}\n"))
    (tmp_path / "a.yaml").write_text(
        _workflow("    - {name: a, command: [echo]}\n").replace("daily", "first")
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    loaded = load_path(tmp_path)
    assert [m.metadata.name for _, m in loaded] == ["first", "daily"]


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: [\n")
    (tmp_path / "b.yaml").write_text("")
    with pytest.raises(ValidationError) as caught:
        load_path(tmp_path)
    assert [(Path(p.source).name, p.message) for p in caught.value.problems] == [
        ("a.yaml", "expected the node content, but found '<stream end>'"),
        ("b.yaml", "file is empty: no manifest found"),
    ]


def test_a_missing_path_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file or directory"):
        load_path(tmp_path / "nope.yaml")


def test_a_directory_without_manifests_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"no \*.yaml or \*.yml files found"):
        load_path(tmp_path)


def test_yaml_syntax_errors_have_line_and_column() -> None:
    text = HEAD + "spec:\n  tasks:\n    - name: a\n      command: echo x: 1\n"
    assert _problems(text) == ["daily.yaml: line 7, column 22: mapping values are not allowed here"]


def test_a_repeated_key_is_an_error_not_silently_overwritten() -> None:
    assert _problems(HEAD + "kind: Workflow\n") == [
        'daily.yaml: line 4, column 1: duplicate key "kind"'
    ]


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    assert _problems("- a\n- b\n") == ["daily.yaml: a manifest must be a mapping, not a list"]


def test_an_unknown_kind_is_refused() -> None:
    text = "apiVersion: tideflow.dev/v1alpha1\nkind: Workflw\nmetadata: {name: x}\n"
    assert _problems(text) == ['daily.yaml: kind: "Workflw" is not one of Workflow, WorkflowRun']


def test_an_unknown_api_version_is_refused() -> None:
    text = "apiVersion: tideflow.dev/v1\nkind: Workflow\nmetadata: {name: x}\n"
    assert _problems(text) == [
        'daily.yaml: apiVersion: "tideflow.dev/v1" is not tideflow.dev/v1alpha1'
    ]


def test_every_document_of_a_multi_document_text_is_checked() -> None:
    text = "kind: Workflow\n---\n" + _workflow("    - {name: a, command: [echo]}\n") + "---\n3\n"
    assert _problems(text) == [
        "daily.yaml[0]: apiVersion: required field is missing",
        "daily.yaml[2]: a manifest must be a mapping, not a int",
    ]


def test_unknown_fields_suggest_the_close_one() -> None:
    text = _workflow(
        "    - {name: a, command: [echo]}\n    - {name: b, command: [x], dependOn: [a]}\n"
    )
    assert _problems(text) == [
        'daily.yaml: spec.tasks[1].dependOn: unknown field (did you mean "dependsOn"?)'
    ]


def test_a_missing_field_is_named() -> None:
    text = "apiVersion: tideflow.dev/v1alpha1\nkind: Workflow\nmetadata: {}\n" + (
        "spec:\n  tasks:\n    - {name: a, command: [echo]}\n"
    )
    assert _problems(text) == ["daily.yaml: metadata.name: required field is missing"]


def test_bounds_are_explained_in_plain_words() -> None:
    text = _workflow("    - {name: a, command: [echo], timeoutSeconds: 0}\n")
    assert _problems(text) == ["daily.yaml: spec.tasks[0].timeoutSeconds: must be greater than 0"]


def test_enum_and_type_errors_are_explained_in_plain_words() -> None:
    text = _workflow(
        "    - {name: a, command: echo, triggerRule: always, forEach: 3, retry: {limit: x}}\n"
    )
    assert _problems(text) == [
        'daily.yaml: spec.tasks[0].triggerRule: "always" is not one of allSuccess, allDone, '
        "anyFailed or anySuccess",
        "daily.yaml: spec.tasks[0].command: must be a list",
        "daily.yaml: spec.tasks[0].forEach: must be a string or a list",
        "daily.yaml: spec.tasks[0].retry.limit: must be an integer",
    ]


def test_model_rules_keep_their_own_message_at_the_right_path() -> None:
    text = _workflow("    - {name: Fetch, command: [echo]}\n    - {name: b}\n")
    assert _problems(text) == [
        "daily.yaml: spec.tasks[0].name: invalid name 'Fetch': use lower-case letters, digits "
        "and '-', starting and ending with a letter or digit",
        "daily.yaml: spec.tasks[1]: a task needs exactly one of function, command or container "
        "(found: none)",
    ]


def test_messages_never_leak_pydantic_urls_or_jargon() -> None:
    text = HEAD + "spec:\n  parallelism: many\n  tasks: []\n  extra: 1\n"
    problems = _problems(text)
    assert problems == [
        "daily.yaml: spec.parallelism: must be an integer",
        "daily.yaml: spec.tasks: must not be empty",
        "daily.yaml: spec.extra: unknown field",
    ]
    assert not any("pydantic" in p or "http" in p or "Input should" in p for p in problems)


def test_keys_that_are_not_identifiers_are_quoted_in_paths() -> None:
    text = HEAD.replace("{name: daily}", "{name: daily, labels: {app.kubernetes.io/name: 3}}")
    text += "spec:\n  tasks:\n    - {name: a, command: [echo]}\n"
    assert _problems(text) == [
        'daily.yaml: metadata.labels["app.kubernetes.io/name"]: must be a string'
    ]


def test_parse_manifest_takes_an_already_parsed_document() -> None:
    doc = {
        "apiVersion": "tideflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "r1"},
        "spec": {"workflowRef": {"name": "daily"}, "params": ["not", "a", "mapping"]},
    }
    with pytest.raises(ValidationError) as caught:
        parse_manifest(doc, "request")
    assert caught.value.problems == [Problem("spec.params", "must be a mapping", "request")]
    del doc["spec"]["params"]  # type: ignore[attr-defined]
    assert isinstance(parse_manifest(doc, "request"), WorkflowRun)


def test_a_document_failing_the_schema_is_still_checked_for_semantic_problems(
    tmp_path: Path,
) -> None:
    (tmp_path / "daily.yaml").write_text(
        "apiVersion: tideflow.dev/v1alpha1\n"
        "kind: Workflow\n"
        "metadata: {name: Daily_Bars}\n"
        "spec:\n"
        "  tasks:\n"
        "    - {name: a, command: [echo], timeoutSeconds: 0, dependOn: [b]}\n"
        "    - {name: b, command: [echo], dependsOn: [c]}\n"
    )
    manifests, problems, salvaged = read_path(tmp_path)
    assert manifests == []
    assert [p.path for p in problems] == [
        "metadata.name",
        "spec.tasks[0].timeoutSeconds",
        "spec.tasks[0].dependOn",
    ]
    ((source, partial),) = salvaged
    assert source.endswith("daily.yaml")
    assert isinstance(partial, Workflow)
    semantic = validate_workflow(partial, source, resolve_functions=False)
    assert [(p.path, p.message) for p in semantic] == [
        ("spec.tasks[1].dependsOn[0]", 'unknown task "c"')
    ]


def test_a_refused_task_name_is_not_salvaged(tmp_path: Path) -> None:
    (tmp_path / "daily.yaml").write_text(
        "apiVersion: tideflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: d}\n"
        "spec:\n  tasks:\n    - {name: Bad_Name, command: [echo]}\n"
    )
    _, problems, salvaged = read_path(tmp_path)
    assert [p.path for p in problems] == ["spec.tasks[0].name"] and salvaged == []


# --------------------------------------------------------------------------- whole validation
#
# ``tideflow validate`` reports schema, template and semantic problems of a
# document in one run. ``load_checked`` is that pipeline; ``_like_the_cli``
# is how the command line composes it today (read_path, then check).

INTERNALS = (
    'template reaches for Python internals ("__class__"); only params, tasks, item, '
    "index, run and schedule are available"
)
UNCLOSED = (
    "template syntax error: line 1: unexpected end of template, expected 'end of print statement'."
)


def _checked(tmp_path: Path, text: str, name: str = "daily.yaml") -> list[tuple[str, str, str]]:
    """(document, path, message) of every problem ``load_checked`` reports for ``text``."""
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        load_checked([tmp_path / name], resolve_functions=True)
    return [(Path(p.source).name, p.path, p.message) for p in caught.value.problems]


def _like_the_cli(path: Path) -> list[Problem]:
    manifests, problems, salvaged = read_path(path)
    try:
        check(manifests + salvaged)
    except ValidationError as exc:
        problems += exc.problems
    return problems


MIXED = _workflow(
    "    - name: fetch\n"
    '      function: "mytasks"\n'
    "      timeoutSeconds: 0\n"
    '      args: {a: "{{ \'\'.__class__ }}", b: "{{ unclosed"}\n'
    "    - {name: clean, command: [echo], dependsOn: [fetc]}\n"
)


def test_schema_template_and_semantic_problems_of_a_document_come_in_one_run(
    tmp_path: Path,
) -> None:
    assert _checked(tmp_path, MIXED) == [
        (
            "daily.yaml",
            "spec.tasks[0].function",
            "function reference 'mytasks' must look like 'package.module:attribute'",
        ),
        ("daily.yaml", "spec.tasks[0].timeoutSeconds", "must be greater than 0"),
        ("daily.yaml", "spec.tasks[1].dependsOn[0]", 'unknown task "fetc" (did you mean "fetch"?)'),
        ("daily.yaml", "spec.tasks[0].args.a", INTERNALS),
        ("daily.yaml", "spec.tasks[0].args.b", UNCLOSED),
    ]


def test_the_cli_composition_reports_the_same_problems_once(tmp_path: Path) -> None:
    (tmp_path / "daily.yaml").write_text(MIXED, encoding="utf-8")
    problems = _like_the_cli(tmp_path / "daily.yaml")
    assert len(problems) == len(set(problems)) == 5
    assert {(p.path, p.message) for p in problems} == {
        (path, message) for _, path, message in _checked(tmp_path, MIXED)
    }


def test_templates_of_a_field_the_schema_refused_are_still_checked(tmp_path: Path) -> None:
    text = _workflow(
        "    - name: a\n"
        "      command: \"echo {{ ''.__class__ }}\"\n"
        '      forEach: {symbols: "{{ unclosed"}\n'
        '      env: {DATE: "{{ item }}"}\n'
    )
    assert _checked(tmp_path, text) == [
        ("daily.yaml", "spec.tasks[0].command", "must be a list"),
        ("daily.yaml", "spec.tasks[0].forEach", "must be a string or a list"),
        ("daily.yaml", "spec.tasks[0].command", INTERNALS),
        ("daily.yaml", "spec.tasks[0].forEach.symbols", UNCLOSED),
    ]  # and no '"item" is only defined in tasks with forEach': forEach was refused, not absent


def test_templates_are_checked_when_the_document_cannot_be_salvaged(tmp_path: Path) -> None:
    text = _workflow(
        "    - {name: Bad_Name, command: [\"{{ ''.__class__ }}\"]}\n"
        '    - {name: b, command: [echo], args: {x: "{{ unclosed"}}\n'
    )
    assert _checked(tmp_path, text) == [
        (
            "daily.yaml",
            "spec.tasks[0].name",
            "invalid name 'Bad_Name': use lower-case letters, digits and '-', starting and "
            "ending with a letter or digit",
        ),
        ("daily.yaml", "spec.tasks[0].command[0]", INTERNALS),
        ("daily.yaml", "spec.tasks[1].args.x", UNCLOSED),
    ]


def test_a_task_of_no_kind_or_two_kinds_keeps_every_check_but_its_functions(
    tmp_path: Path,
) -> None:
    text = _workflow(
        '    - {name: a, function: no.such.module:f, command: ["{{ tasks.b.output }}"]}\n'
        "    - name: b\n"
        '      container: {image: alpine, command: ["{{ tasks.a.output }}"]}\n'
        "    - {name: c, function: not-a-reference, dependsOn: [d]}\n"
    )
    assert _checked(tmp_path, text) == [
        (
            "daily.yaml",
            "spec.tasks[0]",
            "a task needs exactly one of function, command or container (found: function, command)",
        ),
        ("daily.yaml", "spec.tasks[1]", "container tasks need executor: kubernetes"),
        (
            "daily.yaml",
            "spec.tasks[2].function",
            "function reference 'not-a-reference' must look like 'package.module:attribute'",
        ),
        ("daily.yaml", "spec.tasks[2].dependsOn[0]", 'unknown task "d"'),
        (
            "daily.yaml",
            "spec.tasks[0].command[0]",
            "template uses tasks['b'] which is not upstream of \"a\"; add it to dependsOn",
        ),
        (
            "daily.yaml",
            "spec.tasks[1].container.command[0]",
            "template uses tasks['a'] which is not upstream of \"b\"; add it to dependsOn",
        ),
    ]  # no.such.module is not imported: which kind the task should be is unknown


def test_refused_args_or_executor_do_not_produce_signature_problems(tmp_path: Path) -> None:
    text = _workflow(
        "    - {name: a, function: 'tests.unit.taskfns:fetch_bars', args: [AAPL]}\n"
        "    - {name: b, function: 'images.only:main', executor: k8s, dependsOn: [c]}\n"
    )
    assert _checked(tmp_path, text) == [
        ("daily.yaml", "spec.tasks[0].args", "must be a mapping"),
        ("daily.yaml", "spec.tasks[1].executor", '"k8s" is not one of local or kubernetes'),
        ("daily.yaml", "spec.tasks[1].dependsOn[0]", 'unknown task "c"'),
    ]


def test_a_missing_field_drops_the_optional_mapping_holding_it(tmp_path: Path) -> None:
    text = _workflow(
        "    - name: a\n"
        "      executor: kubernetes\n"
        '      container: {command: ["{{ unclosed"]}\n'
        "      compensate: {args: {v: \"{{ ''.__class__ }}\"}}\n"
        "    - {name: b, command: [echo], dependsOn: [x]}\n"
    )
    assert _checked(tmp_path, text) == [
        ("daily.yaml", "spec.tasks[0].container.image", "required field is missing"),
        ("daily.yaml", "spec.tasks[0].compensate.function", "required field is missing"),
        ("daily.yaml", "spec.tasks[0].container.command[0]", UNCLOSED),
        ("daily.yaml", "spec.tasks[0].compensate.args.v", INTERNALS),
        ("daily.yaml", "spec.tasks[1].dependsOn[0]", 'unknown task "x"'),
    ]


def test_a_refused_parameter_type_does_not_check_its_default_against_another(
    tmp_path: Path,
) -> None:
    text = HEAD + (
        "spec:\n"
        "  params:\n"
        "    - {name: n, type: int, default: 5, enum: []}\n"
        "  tasks:\n"
        '    - {name: a, command: ["{{ params.n }}"], dependsOn: [b]}\n'
    )
    assert [(path, message) for _, path, message in _checked(tmp_path, text)] == [
        (
            "spec.params[0].type",
            '"int" is not one of string, integer, number, boolean, date, datetime, array or object',
        ),
        ("spec.params[0].enum", "must not be empty"),
        ("spec.tasks[0].dependsOn[0]", 'unknown task "b"'),
    ]


def test_a_refused_name_is_put_back_so_a_repeated_definition_is_reported(tmp_path: Path) -> None:
    document = HEAD.replace("daily", "Daily") + "spec:\n  tasks:\n    - {name: a, command: [x]}\n"
    invalid = (
        "invalid name 'Daily': use lower-case letters, digits and '-', starting and ending "
        "with a letter or digit"
    )
    assert _checked(tmp_path, document + "---\n" + document) == [
        ("daily.yaml[0]", "metadata.name", invalid),
        ("daily.yaml[1]", "metadata.name", invalid),
        (
            "daily.yaml[1]",
            "metadata.name",
            f'Workflow "default/Daily" is defined twice (also in {tmp_path / "daily.yaml"}[0])',
        ),
    ]


def test_a_document_of_unknown_api_version_gets_that_problem_only(tmp_path: Path) -> None:
    text = MIXED.replace("tideflow.dev/v1alpha1", "tideflow.dev/v2")
    assert _checked(tmp_path, text) == [
        ("daily.yaml", "apiVersion", '"tideflow.dev/v2" is not tideflow.dev/v1alpha1')
    ]
    assert read_path(tmp_path / "daily.yaml")[2] == []


def test_problems_come_file_by_file_then_document_by_document(tmp_path: Path) -> None:
    broken = _workflow("    - {name: a, command: [echo], timeoutSeconds: 0, dependsOn: [b]}\n")
    good = _workflow("    - {name: a, command: [echo]}\n")
    documents = [(broken if i in (2, 10) else good).replace("daily", f"w{i}") for i in range(11)]
    (tmp_path / "b.yaml").write_text(broken, encoding="utf-8")
    problems = _checked(tmp_path, "---\n".join(documents), name="a.yaml")
    assert [(source, path) for source, path, _ in problems] == [
        ("a.yaml[2]", "spec.tasks[0].timeoutSeconds"),
        ("a.yaml[2]", "spec.tasks[0].dependsOn[0]"),
        ("a.yaml[10]", "spec.tasks[0].timeoutSeconds"),
        ("a.yaml[10]", "spec.tasks[0].dependsOn[0]"),
    ]
    with pytest.raises(ValidationError) as caught:
        load_checked([tmp_path / "b.yaml", tmp_path / "a.yaml"])
    assert [Path(p.source).name for p in caught.value.problems] == [
        "b.yaml",
        "b.yaml",
        "a.yaml[2]",
        "a.yaml[2]",
        "a.yaml[10]",
        "a.yaml[10]",
    ]


BROKEN_DOCUMENTS = {
    "mixed": MIXED,
    "string command": _workflow("    - {name: a, command: \"{{ ''.__class__ }}\"}\n"),
    "refused forEach": _workflow(
        '    - {name: a, command: ["{{ item }}"], forEach: 3, args: {x: "{{ unclosed"}}\n'
    ),
    "refused name": _workflow('    - {name: A, command: ["{{ unclosed"]}\n'),
    "two kinds": _workflow(
        '    - {name: a, command: ["{{ x._y }}"], function: m:f, workingDir: "{{ unclosed"}\n'
    ),
    "param default": HEAD
    + (
        "spec:\n  params: [{name: p, default: \"{{ ''.__class__ }}\", type: text}]\n"
        '  tasks: [{name: a, command: ["{{ params.p }}"], timeoutSeconds: -1}]\n'
    ),
    "compensate": _workflow(
        '    - {name: a, command: [x], compensate: {function: m:f, args: {v: "{{ unclosed"}}, '
        "timeoutSeconds: 0}\n"
    ),
}


@pytest.mark.parametrize("name", BROKEN_DOCUMENTS)
def test_no_problem_is_reported_twice(tmp_path: Path, name: str) -> None:
    (tmp_path / "daily.yaml").write_text(BROKEN_DOCUMENTS[name], encoding="utf-8")
    problems = _like_the_cli(tmp_path / "daily.yaml")
    assert len(problems) == len(set(problems)), problems
    assert any("template" in p.message for p in problems)
    with pytest.raises(ValidationError) as caught:
        load_checked([tmp_path / "daily.yaml"])
    assert sorted(map(str, caught.value.problems)) == sorted(map(str, problems))
