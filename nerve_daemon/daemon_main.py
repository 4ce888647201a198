"""The background daemon's process: `python -m nerve_daemon.daemon_main ROOT`, started detached
(new session) by `nerve daemon start`.

It takes the workspace lock (one nerve per workspace; a killed daemon's lock dies with it), writes
`nerve.pid`, sends its logging to `logs/nerve.log` (rotated by size) and stray output there too,
and runs the kernel with its IPC socket until SIGTERM or SIGINT. Anything that goes wrong before
its logging is set up lands in the same file, which the starting command already appends to.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from functools import partial
from pathlib import Path

import anyio

from nerve_core import NerveConfig, Workspace, load_nerve_config
from nerve_core.errors import NerveError

from .service import daemon_log, serve, workspace_lock

log = logging.getLogger("nerve")


class _LogWriter(io.TextIOBase):
    """Stray writes to stdout/stderr, as log lines (so the log file has one writer).

    When the log file itself cannot be written (a full disk), `logging` reports the failure on
    stderr, which is this writer again: such writes, made while one is under way, are dropped,
    or the recursion would kill whichever thread logged (the log writer's, once)."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._partial = ""
        self._busy = threading.local()

    def write(self, text: str) -> int:
        if getattr(self._busy, "on", False):
            return len(text)
        self._busy.on = True
        try:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            for line in lines:
                if line.strip():
                    log.log(self._level, "%s", line)
        finally:
            self._busy.on = False
        return len(text)

    def flush(self) -> None:
        pass


def main(root: Path) -> int:
    workspace = Workspace(root.absolute())
    try:
        config = load_nerve_config(workspace.config_path)
        with workspace_lock(workspace), daemon_log(workspace):
            return _run(config, workspace)
    except NerveError as exc:  # before the log was set up: the starting command reads stderr
        print(f"nerve daemon: {exc}", file=sys.stderr, flush=True)
        return 1


def _run(config: NerveConfig, workspace: Workspace) -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = _LogWriter(logging.INFO)
    sys.stderr = _LogWriter(logging.ERROR)
    workspace.pid_path.write_text(f"{os.getpid()}\n")
    log.info("daemon starting: pid %s, workspace %s", os.getpid(), workspace.root)
    try:
        anyio.run(partial(serve, config, workspace, reload_on_hangup=True))
    except NerveError as exc:
        log.error("nerve daemon: %s", exc)
        return 1
    except BaseExceptionGroup as group:
        refused = _user_errors(group)
        if refused:  # a damaged logs.db, say: one clear line each, no traceback
            for error in refused:
                log.error("nerve daemon: %s", error)
        else:
            log.exception("the daemon failed")
        return 1
    finally:
        workspace.pid_path.unlink(missing_ok=True)
        log.info("daemon stopped")
    return 0


def _user_errors(group: BaseExceptionGroup[BaseException]) -> list[NerveError]:
    """The `NerveError`s a group holds, when it holds nothing else (else: an empty list)."""
    found: list[NerveError] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _user_errors(exc)
            if not inner:
                return []
            found += inner
        elif isinstance(exc, NerveError):
            found.append(exc)
        else:
            return []
    return found


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
