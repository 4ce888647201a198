"""`nerve dev`: the kernel in the foreground, with a live view of what happens."""

from __future__ import annotations

import typer

from ..options import RootOption, workspace_root


def register(app: typer.Typer) -> None:
    app.command("dev")(dev)


def dev(root: RootOption = None) -> None:
    """Run the workspace in the foreground: signals, errors, timeouts and launches as they
    happen. Ctrl+C stops gracefully."""
    import anyio

    from nerve_core import load_nerve_config
    from nerve_daemon.service import daemon_log, serve, workspace_lock

    from ..live import LiveView
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    config = load_nerve_config(workspace.config_path)
    view = LiveView(workspace)
    with workspace_lock(workspace), daemon_log(workspace):
        view.starting(config)
        try:
            anyio.run(serve, config, workspace, view.row, view.ready)
        finally:
            view.close()
    view.stopped()
