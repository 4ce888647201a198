"""`nerve timers list|cancel`: the delayed triggers the daemon keeps (`--in`/`--at`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import JsonOption, RootOption, workspace_root

app = typer.Typer(help="Delayed triggers (made with --in/--at): list and cancel them.")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="timers")


@app.command("list")
def list_timers(root: RootOption = None, as_json: JsonOption = False) -> None:
    """The delayed triggers not yet due, soonest first (the daemon must be running)."""
    from nerve_core import ListTimersRequest, ListTimersResponse

    from ..client import request
    from ..output import format_ts, print_json, print_table, say
    from ..timers import due_in
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    timers = request(workspace, ListTimersRequest(), ListTimersResponse).timers
    if as_json:
        print_json([timer.model_dump(by_alias=True) for timer in timers])
        return
    if not timers:
        say("no delayed triggers")
        return
    rows = [
        [timer.timer_id, timer.kind, timer.target, format_ts(timer.due), due_in(timer.due)]
        for timer in timers
    ]
    print_table(None, ["timer", "kind", "target", "due", "when"], rows)


@app.command("cancel")
def cancel(
    timer_id: Annotated[str, typer.Argument(help="The timer's id (see `nerve timers list`).")],
    root: RootOption = None,
) -> None:
    """Cancel a delayed trigger before it is due (the daemon must be running)."""
    from nerve_core import CancelTimerRequest, TimerResponse

    from ..client import request
    from ..output import say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    timer = request(workspace, CancelTimerRequest(timer_id=timer_id), TimerResponse).timer
    say(f"cancelled {timer.timer_id} ({timer.kind} {timer.target})")
