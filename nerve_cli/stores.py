"""Read-only access to a workspace's stores for the CLI's queries, which work with or without a
running daemon."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nerve_core.errors import StoreError

if TYPE_CHECKING:
    from nerve_core import Workspace
    from nerve_store import LogStore


def open_logs(workspace: Workspace) -> LogStore | None:
    """The workspace's logs.db, read-only; None when nerve has not run here yet."""
    from nerve_store import LogStore

    if not workspace.logs_db.is_file():
        return None
    try:
        return LogStore.open_readonly(workspace.logs_db)
    except Exception as exc:  # a locked, corrupt or foreign file: say which
        raise StoreError(
            f"{workspace.relative(workspace.logs_db)}: cannot be read: {exc}"
        ) from None
