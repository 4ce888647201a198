"""Run the real `nerve` command in a subprocess, as a user does."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

NERVE = Path(sys.executable).parent / "nerve"


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_nerve(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    full_env = {key: value for key, value in os.environ.items() if key != "NERVE_ROOT"}
    full_env["NO_COLOR"] = "1"
    full_env.update(env or {})
    done = subprocess.run(
        [str(NERVE), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace made by `nerve init`."""
    root = tmp_path / "ws"
    assert run_nerve("init", str(root), cwd=tmp_path).code == 0
    return root
