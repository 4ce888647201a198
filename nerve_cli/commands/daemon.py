"""`nerve status`: what the running daemon says about itself."""

from __future__ import annotations

import typer

from ..options import JsonOption, RootOption, workspace_root


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(root: RootOption = None, as_json: JsonOption = False) -> None:
    """The daemon's pid, uptime and workers; exit 3 when it is not running."""
    from nerve_core import HealthRequest, HealthResponse

    from ..client import request
    from ..output import counted, print_json, print_table, say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    health = request(workspace, HealthRequest(), HealthResponse, timeout=10)
    if as_json:
        print_json(health.model_dump(mode="json", by_alias=True))
        return
    say(
        f"nerve {health.version} running in {workspace.root}: pid {health.pid}, "
        f"up {health.uptime_s:.0f}s, {counted(health.senses, 'sense')}"
    )
    print_table(
        None,
        ["worker", "kind", "state", "pid", "restarts"],
        [(w.name, w.kind, w.state, w.pid or "-", w.restarts) for w in health.workers],
    )
    fatal = [w.name for w in health.workers if w.state == "FATAL"]
    if fatal:
        say(f"crash-looped, not respawning: {', '.join(fatal)} (see logs/nerve.log)")
