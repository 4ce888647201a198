"""The exceptions nerve raises at run time (parsers return `Result` instead).

    NerveError
    ├── ConfigError          nerve.yaml is invalid (carries every issue found)
    ├── WorkspaceError       no workspace found, or a path that cannot hold one
    ├── InvalidNameError     a sense, workflow or group name outside the allowed pattern
    ├── UserModuleError      a sense or workflow module that is missing or broken
    ├── ProtocolError        a malformed message between processes
    ├── DaemonNotRunning     a command needs the daemon and it does not answer
    └── StoreError           logs.db, a sense DB, the archive or the blob store failed
        ├── StoreUnavailable     logs.db cannot be written now (disk full, I/O error, locked)
        └── BlobIntegrityError   a blob's content does not match its digest

The CLI maps these to exit codes in one place (`nerve_cli.app`).
"""

from __future__ import annotations

from collections.abc import Sequence


class NerveError(Exception):
    """Base of every error nerve raises on purpose; its message is meant for the user."""


class ConfigError(NerveError):
    def __init__(self, issues: Sequence[object]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class WorkspaceError(NerveError):
    pass


class InvalidNameError(NerveError):
    pass


class UserModuleError(NerveError):
    pass


class ProtocolError(NerveError):
    pass


class DaemonNotRunning(NerveError):
    pass


class StoreError(NerveError):
    pass


class BlobIntegrityError(StoreError):
    pass


class StoreUnavailable(StoreError):
    pass


class NotFound(NerveError):
    """A name or id that names nothing (`nerve explain` of an unknown sense, run or signal)."""
