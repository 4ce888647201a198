"""Helpers for tests that start real daemons in workspaces of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A folder under /tmp (short, so a socket path fits) removed afterwards, with any daemon a
    workspace in it left running killed first: a failing test never leaves a daemon behind."""
    folder = Path(tempfile.mkdtemp(prefix="nv-", dir="/tmp"))
    try:
        yield folder
    finally:
        for pid_file in folder.glob("*/nerve.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError, OSError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> None:
    """Poll `predicate` until it holds; fail (not hang) once `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
