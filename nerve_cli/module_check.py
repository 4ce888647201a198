"""Checking sense and workflow modules for `nerve validate`, in a child process.

User modules run arbitrary code at import: a broken one may hang, exit, print, or crash the
interpreter. So the CLI imports them in a child (`python -m nerve_cli.module_check`) under a
timeout. The child reports one JSON line per module on its own copy of stdout; what the modules
print goes to its stderr instead, so it cannot corrupt the report. A module that hangs is named:
it is the first one the child did not report on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ModuleTarget:
    kind: str  # "sense" or "workflow"
    name: str


def check_modules(
    root: Path, targets: list[ModuleTarget], timeout: float = DEFAULT_TIMEOUT_S
) -> list[str]:
    """Problems found importing `targets` of the workspace at `root`, one message each."""
    if not targets:
        return []
    spec = json.dumps({"root": str(root), "targets": [[t.kind, t.name] for t in targets]})
    child = subprocess.Popen(
        [sys.executable, "-m", "nerve_cli.module_check", spec],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=root,
    )
    timed_out = False
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, _ = child.communicate()
        timed_out = True
    reports = [
        json.loads(line)
        for line in out.decode("utf-8", "replace").splitlines()
        if line.startswith("{")
    ]
    problems = [report["error"] for report in reports if report["error"]]
    if len(reports) < len(targets):
        stuck = targets[len(reports)]
        path = _module_path(stuck)
        if timed_out:
            problems.append(
                f"{path}: import did not finish within {timeout:g}s (does it block at import?)"
            )
        else:
            problems.append(
                f"{path}: importing it killed the Python process (exit code {child.returncode})"
            )
    return problems


def _module_path(target: ModuleTarget) -> str:
    if target.kind == "sense":
        return f"senses/{target.name}/compute.py"
    return f"workflows/{target.name}/workflow.py"


def _child(spec_text: str) -> None:
    # Keep a private copy of stdout for the report, then point fd 1 at stderr so whatever the
    # user's modules print cannot interleave with it.
    report = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from nerve_core import Workspace
    from nerve_core.errors import NerveError
    from nerve_daemon.supervise.user_modules import load_sense_compute, load_workflow_definition

    spec = json.loads(spec_text)
    workspace = Workspace(Path(spec["root"]))
    for kind, name in spec["targets"]:
        error = None
        try:
            if kind == "sense":
                load_sense_compute(workspace, name)
            else:
                load_workflow_definition(workspace, name)
        except NerveError as exc:
            error = str(exc)
        report.write(json.dumps({"kind": kind, "name": name, "error": error}) + "\n")


if __name__ == "__main__":
    _child(sys.argv[1])
