"""`nerve explain`: why a sense computed or did not, where a run came from, what a signal did.
Asked of the daemon when it runs (it knows its decisions in memory), read from logs.db when not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..options import JsonOption, RootOption, workspace_root

if TYPE_CHECKING:
    from nerve_core import Workspace

app = typer.Typer(
    help="Why a sense computed or did not, where a run came from, what a signal did.",
    no_args_is_help=True,
)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="explain")


@app.command("sense")
def sense(
    name: Annotated[str, typer.Argument(help="The sense's name.", show_default=False)],
    why_not: Annotated[
        bool,
        typer.Option(
            "--why-not",
            help="Why it has not computed since --since (default: since its sources' last "
            "signal, else since its own last compute).",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="A time (ISO 8601, say 2026-12-02T10:00) or a duration ago (10m).",
            show_default=False,
        ),
    ] = None,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """A sense: its schedule, what it waits for now, its recent decisions and rows."""
    from nerve_core import require_name

    require_name(name, "sense name")
    since_ms = None if since is None else _since(since)
    doc = _explain(root, "sense", name, why_not=why_not or since is not None, since=since_ms)
    _show(doc, as_json, _render_sense)


@app.command("run")
def run(
    run_id: Annotated[str, typer.Argument(help="The run's id.", show_default=False)],
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """A run: the chain back to what started it, and its status changes with their reasons."""
    _show(_explain(root, "run", run_id), as_json, _render_run)


@app.command("signal")
def signal(
    signal_id: Annotated[str, typer.Argument(help="The signal's id.", show_default=False)],
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """A signal: which reflexes received it and what each sense did with it."""
    _show(_explain(root, "signal", signal_id), as_json, _render_signal)


def _explain(
    root: Any, what: str, name: str, *, why_not: bool = False, since: int | None = None
) -> dict[str, Any]:
    from nerve_core import ExplainRequest, ExplainResponse
    from nerve_core.errors import DaemonNotRunning

    from ..client import DaemonError, request
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    if len(name) > 128:
        raise typer.BadParameter(f"{what} names are at most 128 characters")
    try:
        message = ExplainRequest(what=what, name=name, why_not=why_not, since=since)
        return request(workspace, message, ExplainResponse).explanation
    except DaemonNotRunning:
        return _offline(workspace, what, name, why_not=why_not, since=since)
    except DaemonError as exc:
        from nerve_core.errors import NotFound

        if exc.code.startswith("unknown_"):
            raise NotFound(str(exc)) from None
        raise


def _offline(
    workspace: Workspace, what: str, name: str, *, why_not: bool, since: int | None
) -> dict[str, Any]:
    """From logs.db and nerve.yaml, with no daemon."""
    from nerve_core import load_nerve_config
    from nerve_daemon.explain import explain_run, explain_sense, explain_signal

    from ..stores import open_logs

    config = load_nerve_config(workspace.config_path)
    store = open_logs(workspace)
    try:
        if what == "sense":
            return explain_sense(config, store, name, None, why_not=why_not, since=since)
        if what == "run":
            return explain_run(store, name)
        return explain_signal(config, store, name, None)
    finally:
        if store is not None:
            store.close()


def _since(text: str) -> int:
    """`--since`: an ISO 8601 time (local when it names no zone) or a duration ago."""
    import time
    from datetime import datetime

    from nerve_core import parse_duration

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        ago = parse_duration(text)
        if not ago.ok:
            raise typer.BadParameter(
                f'"{text}" is neither a time (2026-12-02T10:00) nor a duration (10m)',
                param_hint="--since",
            ) from None
        return max(0, int((time.time() - ago.value) * 1000))
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


def _show(doc: dict[str, Any], as_json: bool, render: Any) -> None:
    from ..output import print_json

    if as_json:
        print_json(doc)
    else:
        render(doc)


def _render_sense(doc: dict[str, Any]) -> None:
    from ..output import format_ts, say

    settings = doc["settings"]
    say(f"[bold]sense {doc['sense']}[/] · group {doc['group']} · {doc['state']}")
    schedule, fires = [], []
    for reflex in doc["reflexes"]:
        if "on" in reflex:
            schedule.append("on " + ", ".join(reflex["on"]))
            continue
        timer = f"every {reflex['interval']}" if "interval" in reflex else f"cron {reflex['cron']}"
        timer += f" {reflex['timezone']}" if reflex.get("timezone", "local") != "local" else ""
        schedule.append(timer)
        fires.append(f"  {timer}: next at {', '.join(format_ts(ms) for ms in reflex['next'])}")
    say(
        f"  schedule: {'; '.join(schedule) or 'manual only'} · throttle {settings['throttle']}"
        f" · grace {settings['gracePeriod']} · timeout {settings['timeout']}"
    )
    for line in fires:
        say(line)
    if doc["daemon"] != "running":
        say("  (nerve is not running: from logs.db and nerve.yaml)")
    now = doc.get("now") or {}
    if "running" in now:
        running = now["running"]
        line = f"  computing now: trigger {running['trigger']} ({running['kind']})"
        if "progress" in running:
            line += f", {_percent(running['progress'])}"
        if "rateLimit" in running:
            limit = running["rateLimit"]
            line += f", waiting in ctx.limit({limit['name']!r}) until {format_ts(limit['until'])}"
        say(line)
    if "pending" in now:
        say(f"  pending: trigger {now['pending']['trigger']} ({now['pending']['kind']})")
    if "throttledUntil" in now:
        say(f"  throttled until {format_ts(now['throttledUntil'])}")
    if "heldUntil" in now:
        say(f"  held by the grace period until {format_ts(now['heldUntil'])}")
    for timer in now.get("delayed", []):
        say(f"  delayed trigger {timer['timerId']} due at {format_ts(timer['due'])}")
    if doc.get("counts"):
        counts = ", ".join(f"{reason} {count}" for reason, count in sorted(doc["counts"].items()))
        say(f"  decisions since start: {counts}")
    if doc.get("recent"):
        say("  recent decisions (newest first):")
        for entry in doc["recent"]:
            extra = _entry_extra(entry)
            say(f"    {format_ts(entry['at'])}  {entry['reason']:<13} {entry['trigger']}{extra}")
    if doc.get("rows"):
        say("  recent rows (newest first):")
        for row in doc["rows"]:
            say(f"    {format_ts(row['at'])}  {row['type']:<16} {row.get('cause') or ''}")
    why = doc.get("whyNot")
    if why:
        say(f"[bold]why not[/] since {why['sinceWhat']} ({format_ts(why['since'])}):")
        for sentence in why["answer"]:
            say(f"  - {sentence}")


def _percent(progress: dict[str, Any]) -> str:
    from ..output import format_progress

    return format_progress(progress["fraction"], progress.get("note") or "")


def _entry_extra(entry: dict[str, Any]) -> str:
    parts = [entry["kind"]]
    if entry.get("signal"):
        parts.append(f"signal {entry['signal']}")
    if entry.get("into"):
        parts.append(f"into {entry['into']}")
    if entry.get("detail"):
        parts.append(entry["detail"])
    return " (" + ", ".join(parts) + ")"


def _render_run(doc: dict[str, Any]) -> None:
    from nerve_core import format_duration

    from ..output import format_ts, say

    say(f"[bold]run {doc['run']}[/] · workflow {doc['workflow']} · {doc['status']}")
    if "progress" in doc:
        say(f"  progress: {_percent(doc['progress'])}")
    say("  how it began (root first):")
    for step in doc["chain"]:
        match step["step"]:
            case "root":
                say(f"    {step['what']}")
            case "command":
                say(f"    {step['what']}")
            case "timer":
                say(f"    {step['what']}: timer {step['timer']}")
            case "signal":
                if "missing" in step:
                    say(f"    → signal {step['signal']} ({step['missing']})")
                elif step["sense"].startswith("@"):
                    say(
                        f"    → the kernel signalled {step['sense']} ({step['signal']}) about the "
                        f"compute of trigger {step['trigger']} at {format_ts(step['at'])}"
                    )
                else:
                    say(
                        f"    → {step['sense']} computed (trigger {step['trigger']}) and "
                        f"signalled {step['signal']} at {format_ts(step['at'])}"
                    )
            case "launch":
                say(
                    f"    → {step['sense']} computed (trigger {step.get('trigger')}) and "
                    f"launched this run"
                )
    say("  status changes:")
    for change in doc["history"]:
        if change.get("stalled"):
            silent = format_duration(round(change.get("silentS", 0)))
            what = f"stalled: no message for {silent} (on_stall: {change.get('onStall')})"
            say(f"    {format_ts(change['at'])}  {what}")
            continue
        reason = f": {change['reason']}" if change.get("reason") else ""
        say(f"    {format_ts(change['at'])}  {change.get('status')}{reason}")


def _render_signal(doc: dict[str, Any]) -> None:
    from ..output import format_ts, say

    say(f"[bold]signal {doc['signal']}[/] from {doc['source']} at {format_ts(doc['at'])}")
    if not doc["subscribers"]:
        say(f"  no reflex listens to {doc['source']}")
    for delivery in doc["deliveries"]:
        say(f"  {delivery['sense']}: {delivery['summary']}")
