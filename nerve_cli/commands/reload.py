"""`nerve reload [--plan]`: apply the workspace's nerve.yaml and changed code to the running
daemon, or show first what that would do."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..options import JsonOption, RootOption, workspace_root


def register(parent: typer.Typer) -> None:
    parent.command("reload")(reload)


def reload(
    plan: Annotated[
        bool, typer.Option("--plan", help="Show what a reload would do; change nothing.")
    ] = False,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply nerve.yaml and the files changed since (see `reload: manual`), or show the plan."""
    from nerve_core import ReloadPlanRequest, ReloadRequest, ReloadResponse

    from ..client import request
    from ..output import print_json
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    message = ReloadPlanRequest() if plan else ReloadRequest()
    answer = request(workspace, message, ReloadResponse)
    if as_json:
        print_json({"plan": answer.plan, "applied": answer.applied})
        return
    _render(answer.plan, answer.applied)


def _render(plan: dict[str, Any], applied: bool) -> None:
    from ..output import say, warn

    config = plan["config"]
    if not config["valid"]:
        warn("nerve.yaml is invalid: the running configuration stays")
        for error in config["errors"]:
            say(f"  {error}")
    if plan["empty"]:
        say("nothing to reload: the daemon runs the workspace as it is")
        return
    say("reloaded:" if applied else "a reload would:")
    for group in plan["groups"]:
        line = f"  {group['action']} group {group['group']}"
        if group.get("because"):
            line += f" ({'; '.join(group['because'])})"
        if group.get("finishFirst"):
            line += f"; computes in flight finish first: {', '.join(group['finishFirst'])}"
        say(line)
    for timer in plan["timers"]:
        if timer["action"] == "kept":
            continue
        every = ", ".join(timer.get("every") or [])
        line = f"  timer of {timer['sense']}: {timer['action']}"
        line += f" (every {every})" if every else ""
        was = ", ".join(timer.get("was") or [])
        say(line + (f", was every {was}" if was and was != every else ""))
    kept = [timer["sense"] for timer in plan["timers"] if timer["action"] == "kept"]
    if kept:
        say(f"  timers kept (phase, throttle and pending triggers): {', '.join(kept)}")
    for workflow in plan["workflows"]:
        line = f"  {workflow['action']} workflow {workflow['workflow']}"
        if workflow.get("because"):
            line += f" ({'; '.join(workflow['because'])})"
        if workflow.get("runs"):
            line += (
                f"; runs in flight interrupted if still running after "
                f"{workflow['interruptsIfStillRunningAfter']}: {', '.join(workflow['runs'])}"
            )
        if workflow.get("drops"):
            line += f"; queued runs dropped: {', '.join(workflow['drops'])}"
        if workflow.get("changes"):
            changes = ", ".join(f"{k} {a} → {b}" for k, (a, b) in workflow["changes"].items())
            line += f" ({changes})"
        say(line)
    if plan["other"]:
        say(f"  also: {', '.join(plan['other'])}")
