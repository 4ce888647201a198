from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import run_nerve

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_repository_example_workspace_validates(tmp_path: Path) -> None:
    shutil.copy(REPO / "nerve.yaml.example", tmp_path / "nerve.yaml")
    shutil.copytree(REPO / "senses", tmp_path / "senses")
    shutil.copytree(REPO / "workflows", tmp_path / "workflows")
    result = run_nerve("validate", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "4 senses in 3 groups" in result.out


def test_a_bad_config_is_one_line_naming_file_line_and_key_without_traceback(
    workspace: Path,
) -> None:
    config = workspace / "nerve.yaml"
    config.write_text(config.read_text().replace("interval: 30s", "interval: ten"))
    result = run_nerve("validate", cwd=workspace)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines[0] == (
        'nerve.yaml:15: reflexes[0].interval: invalid duration "ten": '
        "expected e.g. 500ms, 30s, 1m30s, 2h, 1d"
    )
    assert lines[1].startswith("1 problem in ")
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("senses:\n  a:\n    colour: red\n", "nerve.yaml:3: senses.a.colour: unknown key"),
        (
            "senses:\n  a: {}\nreflexes:\n  - sense: a\n    interval: 1s\n    workflow: w\n",
            "nerve.yaml:6: reflexes[0].workflow: reflexes only schedule senses",
        ),
        (
            "senses:\n  a: {}\nreflexes:\n  - sense: b\n    interval: 1s\n",
            "nerve.yaml:4: reflexes[0].sense: unknown sense",
        ),
        (
            "senses:\n  a: {}\nreflexes:\n  - sense: a\n    on: [z]\n",
            "nerve.yaml:5: reflexes[0].on[0]: unknown signal",
        ),
        ("senses:\n  Bad: {}\n", "nerve.yaml:2: senses.Bad: invalid name"),
        ("senses:\n  a: [\n", "nerve.yaml:3: invalid YAML"),
        ("workflows:\n  w:\n    overflow: spill\n", "nerve.yaml:3: workflows.w.overflow: must be"),
    ],
)
def test_each_class_of_bad_config_exits_1_with_a_located_error(
    tmp_path: Path, config: str, expected: str
) -> None:
    write(tmp_path / "nerve.yaml", config)
    result = run_nerve("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith(expected), result.err
    assert "Traceback" not in result.err


def test_every_problem_is_listed_config_and_modules_alike(tmp_path: Path) -> None:
    write(tmp_path / "nerve.yaml", "senses:\n  a: {}\n  b: {}\nworkflows:\n  w: {}\n")
    write(tmp_path / "senses/b/compute.py", "def calculate(ctx):\n    return 1\n")
    write(tmp_path / "workflows/w/workflow.py", "definition = {'moderator': None}\n")
    result = run_nerve("validate", cwd=tmp_path)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert lines == [
        "senses/a/compute.py: missing",
        "senses/b/compute.py: defines no `compute(ctx)` function",
        "workflows/w/workflow.py: `definition` is a dict, not a WorkflowDefinition",
        f"3 problems in {tmp_path}",
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\ndef compute(ctx)\n    return x\n", "senses/a/compute.py:2: SyntaxError"),
        (
            "import json\nraise RuntimeError('no config')\n",
            "senses/a/compute.py:2: RuntimeError at import: no config",
        ),
        ("import no_such_module_here\n", "senses/a/compute.py:1: ModuleNotFoundError at import"),
        ("compute = 5\n", "senses/a/compute.py: `compute` is a int, not a function"),
        (
            "def compute():\n    return 1\n",
            "senses/a/compute.py: `compute` must take exactly one argument",
        ),
        ("import sys\nsys.exit(3)\n", "senses/a/compute.py:2: SystemExit at import"),
    ],
)
def test_a_broken_sense_module_is_named_with_its_line(
    tmp_path: Path, source: str, expected: str
) -> None:
    write(tmp_path / "nerve.yaml", "senses:\n  a: {}\n")
    write(tmp_path / "senses/a/compute.py", source)
    result = run_nerve("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith(expected), result.err
    assert "Traceback" not in result.err


def test_async_computes_and_modules_that_print_validate(tmp_path: Path) -> None:
    write(tmp_path / "nerve.yaml", "senses:\n  a: {}\n  b: {}\n")
    write(
        tmp_path / "senses/a/compute.py",
        'print(\'{"kind": "sense", "error": "fake"}\')\nasync def compute(ctx):\n    return 1\n',
    )
    write(tmp_path / "senses/b/compute.py", "def compute(ctx, extra=None):\n    return 1\n")
    result = run_nerve("validate", cwd=tmp_path)
    assert result.code == 0, result.err


def test_a_module_that_hangs_at_import_is_named_after_the_timeout(tmp_path: Path) -> None:
    write(tmp_path / "nerve.yaml", "senses:\n  fine: {}\n  stuck: {}\n")
    write(tmp_path / "senses/fine/compute.py", "def compute(ctx):\n    return 1\n")
    write(tmp_path / "senses/stuck/compute.py", "import time\nwhile True:\n    time.sleep(0.1)\n")
    result = run_nerve("validate", "--import-timeout", "3", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith("senses/stuck/compute.py: import did not finish within 3s")


def test_a_module_that_kills_the_interpreter_is_named(tmp_path: Path) -> None:
    write(tmp_path / "nerve.yaml", "senses:\n  a: {}\n")
    write(tmp_path / "senses/a/compute.py", "import os\nos._exit(9)\n")
    result = run_nerve("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith(
        "senses/a/compute.py: importing it killed the Python process (exit code 9)"
    )


def test_validate_json_lists_problems_for_scripts(tmp_path: Path) -> None:
    write(tmp_path / "nerve.yaml", "senses:\n  a: {}\n")
    result = run_nerve("validate", "--json", cwd=tmp_path)
    assert result.code == 1
    data = json.loads(result.out)
    assert data == {
        "ok": False,
        "root": str(tmp_path),
        "problems": ["senses/a/compute.py: missing"],
    }


def test_the_workspace_is_found_from_a_subfolder(workspace: Path) -> None:
    result = run_nerve("validate", cwd=workspace / "senses" / "load-average")
    assert result.code == 0, result.err
    assert str(workspace) in result.out


def test_root_option_and_nerve_root_name_the_workspace(workspace: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_nerve("--root", str(workspace), "validate", cwd=elsewhere).code == 0
    assert run_nerve("validate", "--root", str(workspace), cwd=elsewhere).code == 0
    assert run_nerve("validate", cwd=elsewhere, env={"NERVE_ROOT": str(workspace)}).code == 0


def test_no_workspace_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    result = run_nerve("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith("error: no nerve.yaml in")
    assert "nerve init" in result.err
    assert "Traceback" not in result.err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_nerve("--debug", "validate", cwd=tmp_path)
    assert result.code == 1
    assert "Traceback" in result.err


def test_an_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    assert run_nerve("frobnicate", cwd=tmp_path).code == 2
