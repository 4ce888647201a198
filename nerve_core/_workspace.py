"""Names and workspace paths, in one place.

Every path nerve builds from a sense, workflow or group name goes through `Workspace`, and every
name is checked against `NAME_PATTERN` first, so no name can reach outside the workspace. This
module computes paths only; it touches no file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ._result import Result, err, ok
from .errors import InvalidNameError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NAME_RULE = "lowercase letters, digits, '-' and '_', starting with a letter or digit, at most 64"

CONFIG_FILE = "nerve.yaml"


# Names nerve writes its own rows under (`source` in logs.db): no sense, workflow or group may
# take one, or its rows would pass for the kernel's.
RESERVED_NAMES = frozenset({"kernel"})


def check_name(name: object, kind: str = "name") -> Result[str, str]:
    """`name` if it is a valid sense, workflow or group name, else a message naming `kind`."""
    if isinstance(name, str) and name in RESERVED_NAMES:
        return err(f'invalid {kind} "{name}": the name is reserved for nerve\'s own log rows')
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        return ok(name)
    shown = f'"{name}"' if isinstance(name, str) else repr(name)
    return err(f"invalid {kind} {shown}: use {NAME_RULE}")


def require_name(name: object, kind: str = "name") -> str:
    """`name` if valid, else raise `InvalidNameError`: for entry points that take a name."""
    checked = check_name(name, kind)
    if not checked.ok:
        raise InvalidNameError(checked.error)
    return checked.value


@dataclass(frozen=True, slots=True)
class Workspace:
    """The layout of one workspace (DESIGN.md, "Workspace layout") rooted at `root`."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def senses_dir(self) -> Path:
        return self.root / "senses"

    @property
    def workflows_dir(self) -> Path:
        return self.root / "workflows"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def logs_db(self) -> Path:
        return self.data_dir / "logs.db"

    @property
    def sense_dbs_dir(self) -> Path:
        return self.data_dir / "senses"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive" / "logs"

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "nerve.log"

    @property
    def socket_path(self) -> Path:
        return self.root / "nerve.sock"

    @property
    def pid_path(self) -> Path:
        return self.root / "nerve.pid"

    @property
    def lock_path(self) -> Path:
        return self.root / "nerve.lock"

    def sense_dir(self, name: str) -> Path:
        return self.senses_dir / require_name(name, "sense name")

    def sense_module(self, name: str) -> Path:
        return self.sense_dir(name) / "compute.py"

    def sense_migrations_dir(self, name: str) -> Path:
        return self.sense_dir(name) / "migrations"

    def sense_db(self, name: str) -> Path:
        return self.sense_dbs_dir / f"{require_name(name, 'sense name')}.db"

    def workflow_dir(self, name: str) -> Path:
        return self.workflows_dir / require_name(name, "workflow name")

    def workflow_module(self, name: str) -> Path:
        return self.workflow_dir(name) / "workflow.py"

    def relative(self, path: Path) -> str:
        """`path` relative to the root when inside it, for messages that name a file."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
