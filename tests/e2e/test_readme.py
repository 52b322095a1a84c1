"""The README's examples run verbatim.

Every fenced block of ``README.md`` says what it is. ``yaml`` blocks are
manifests: each must pass ``tideflow validate``, run from the repository root
(so ``examples.quant`` imports, as after ``git clone``). ``python`` blocks are
scripts: each runs as ``python BLOCK.py`` in an empty temporary directory,
without the repository on ``sys.path``, against a temporary SQLite database
given by ``TIDEFLOW_DATABASE_URL`` (the settings the README's code reads), and
every run it records must have Succeeded. Output samples and shell sessions
are fenced ``text``, ``console`` or ``sh``, which are not run. A block that is
deliberately a fragment is skipped only with a marker on the line before its
fence::

    <!-- readme-test: skip (why) -->
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.cli import ROOT, cli_env
from tideflow.client import connect
from tideflow.model import RunPhase

README = ROOT / "README.md"
RUN = ("yaml", "python")
NOT_RUN = ("text", "console", "sh")

_FENCE = re.compile(r"^```(?P<language>\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    language: str
    line: int
    """1-based line number of the opening fence."""
    text: str
    skip: str | None
    """The reason of a skip marker right before the fence, if there is one."""

    @property
    def id(self) -> str:
        return f"{self.language}-line-{self.line}"


def read_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order.

    Raises:
        AssertionError: a fence is never closed, or a ``readme-test`` comment
            is malformed or does not stand right before a fence.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    opened: tuple[str, int, str | None] | None = None
    body: list[str] = []
    marker: tuple[int, str] | None = None
    for number, line in enumerate(lines, start=1):
        fence = _FENCE.match(line)
        if opened is not None:
            if line == "```":
                language, start, skip = opened
                blocks.append(Block(language, start, "\n".join(body) + "\n", skip))
                opened, body = None, []
            else:
                body.append(line)
            continue
        if fence is not None:
            skip = marker[1] if marker is not None and marker[0] == number - 1 else None
            opened, marker = (fence["language"], number, skip), None
            continue
        assert marker is None, f"README.md:{marker[0]}: a skip marker must be right before a fence"
        if "readme-test" in line:
            found = _MARKER.match(line.strip())
            assert found, f"README.md:{number}: expected <!-- readme-test: skip (reason) -->"
            marker = (number, found["reason"])
    assert opened is None, f"README.md:{opened[1]}: fence never closed"
    return blocks


BLOCKS = read_blocks(README.read_text(encoding="utf-8"))
YAML = [b for b in BLOCKS if b.language == "yaml"]
PYTHON = [b for b in BLOCKS if b.language == "python"]


def test_every_block_says_whether_it_is_an_example_to_run() -> None:
    unknown = [(b.line, b.language) for b in BLOCKS if b.language not in RUN + NOT_RUN]
    assert unknown == [], f"fence these blocks as one of {RUN + NOT_RUN}"


def test_the_readme_has_examples_to_run() -> None:
    assert [b for b in YAML if b.skip is None] and [b for b in PYTHON if b.skip is None]


@pytest.mark.parametrize("block", YAML, ids=lambda b: b.id)
def test_a_yaml_block_is_a_valid_manifest(block: Block, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    manifest = tmp_path / f"readme-{block.id}.yaml"
    manifest.write_text(block.text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tideflow", "validate", "-f", str(manifest)],
        cwd=ROOT,
        env=cli_env(f"sqlite:///{tmp_path / 'tideflow.db'}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"README.md:{block.line}:\n{done.stdout}{done.stderr}"
    assert "is valid" in done.stdout


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_a_python_block_runs_as_a_script(block: Block, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    work = tmp_path / "work"
    work.mkdir()
    script = work / f"readme_{block.id.replace('-', '_')}.py"
    script.write_text(block.text, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'readme.db'}"
    env = cli_env(url)
    # As for a user's script: tideflow is installed, this repository is not on the path.
    del env["PYTHONPATH"]
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"README.md:{block.line}:\n{done.stdout}{done.stderr}"
    assert not (work / "tideflow.db").exists(), "the script ignored TIDEFLOW_DATABASE_URL"
    if (tmp_path / "readme.db").exists():
        with connect(url) as tf:
            failed = [(r.name, r.phase) for r in tf.runs() if r.phase is not RunPhase.SUCCEEDED]
        assert failed == [], f"README.md:{block.line}:\n{done.stdout}{done.stderr}"
