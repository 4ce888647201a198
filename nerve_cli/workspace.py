"""Finding the workspace a command works on: `--root DIR`, else `NERVE_ROOT`, else the nearest
parent of the current directory holding `nerve.yaml`."""

from __future__ import annotations

import os
from pathlib import Path

from nerve_core import Workspace
from nerve_core._workspace import CONFIG_FILE
from nerve_core.errors import WorkspaceError


def find_workspace(root: Path | None) -> Workspace:
    if root is None and os.environ.get("NERVE_ROOT"):
        root = Path(os.environ["NERVE_ROOT"])
    if root is not None:
        root = root.expanduser().absolute()
        if not (root / CONFIG_FILE).is_file():
            raise WorkspaceError(
                f"{root}: no {CONFIG_FILE} here (create a workspace with `nerve init {root}`)"
            )
        return Workspace(root)
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / CONFIG_FILE).is_file():
            return Workspace(folder)
    raise WorkspaceError(
        f"no {CONFIG_FILE} in {cwd} or any folder above it: run `nerve init`, "
        "or name the workspace with --root DIR or NERVE_ROOT"
    )
