from __future__ import annotations

from pathlib import Path

from .conftest import run_nerve


def test_init_creates_a_workspace_that_validates(tmp_path: Path) -> None:
    result = run_nerve("init", "w", cwd=tmp_path)
    assert result.code == 0, result.err
    root = tmp_path / "w"
    assert (root / "nerve.yaml").is_file()
    assert (root / "senses/load-average/compute.py").is_file()
    assert (root / "senses/load-average/migrations/001_samples.sql").is_file()
    assert (root / "workflows/load-report/workflow.py").is_file()
    assert "data/" in (root / ".gitignore").read_text()
    checked = run_nerve("validate", cwd=root)
    assert checked.code == 0, checked.err
    assert "1 sense in 1 group" in checked.out


def test_init_defaults_to_the_current_folder(tmp_path: Path) -> None:
    assert run_nerve("init", cwd=tmp_path).code == 0
    assert (tmp_path / "nerve.yaml").is_file()


def test_init_refuses_an_existing_workspace_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "nerve.yaml").write_text("max_rounds: 5\n")
    result = run_nerve("init", str(tmp_path), cwd=tmp_path)
    assert result.code == 1
    assert "nerve.yaml" in result.err
    assert "Traceback" not in result.err
    assert (tmp_path / "nerve.yaml").read_text() == "max_rounds: 5\n"
    assert not (tmp_path / "senses").exists()
