"""`nerve workflow`: workflow runs, their logs and their threads (read from logs.db, with or
without a running daemon)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..options import (
    AtOption,
    InOption,
    JsonOption,
    KeyOption,
    RootOption,
    check_key,
    workspace_root,
)

if TYPE_CHECKING:
    from nerve_store import LogStore, RunRecord

app = typer.Typer(help="Workflow runs: list, inspect, read their threads.", no_args_is_help=True)

RunArgument = Annotated[str, typer.Argument(help="The run's id.", show_default=False)]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Rows to show at most.")]
OffsetOption = Annotated[int, typer.Option("--offset", min=0, help="Rows to skip first.")]


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="workflow")


@app.command("list")
def list_runs(
    root: RootOption = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Finished runs too (default: only those in flight).")
    ] = False,
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow.")] = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """List workflow runs, newest first."""
    from nerve_core import RunStatus, require_name

    from ..output import clip, format_ts, print_json, print_table, say

    if workflow is not None:
        require_name(workflow, "workflow name")
    in_flight = [RunStatus.QUEUED, RunStatus.STARTED, RunStatus.CRASHED]
    with _logs(root) as store:
        runs = (
            []
            if store is None
            else store.runs(
                statuses=None if all_runs else in_flight,
                workflow=workflow,
                limit=limit,
                offset=offset,
            )
        )
    if as_json:
        print_json([_run_json(run) for run in runs])
        return
    if not runs:
        say("no runs" if all_runs else "no runs in flight (--all lists finished runs too)")
        return
    progress, stalled = _run_progress(root)
    print_table(
        None,
        ["run", "workflow", "status", "rounds", "created", "ended", "progress", "prompt"],
        [
            (
                run.run_id,
                run.workflow,
                f"{run.status} (stalled)" if run.run_id in stalled else run.status,
                f"{run.rounds}/{run.max_rounds}",
                format_ts(run.created_at),
                format_ts(run.ended_at),
                progress.get(run.run_id, "-"),
                clip(run.prompt, 40),
            )
            for run in runs
        ],
    )


def _run_progress(root: Path | None) -> tuple[dict[str, str], set[str]]:
    """What runs in flight last said of their progress, and which are stalled, from the daemon
    when it runs."""
    from nerve_core import HealthRequest, HealthResponse
    from nerve_core.errors import DaemonNotRunning

    from ..client import request
    from ..output import format_progress
    from ..workspace import find_workspace

    try:
        health = request(find_workspace(workspace_root(root)), HealthRequest(), HealthResponse)
    except DaemonNotRunning:
        return {}, set()
    progress = {
        run_id: format_progress(info.fraction, info.note)
        for run_id, info in health.run_progress.items()
    }
    return progress, set(health.stalled_runs)


@app.command("trigger")
def trigger(
    name: Annotated[str, typer.Argument(help="The workflow's name.", show_default=False)],
    root: RootOption = None,
    prompt: Annotated[str, typer.Option("--prompt", help="The run's prompt (thread[0]).")] = "",
    payload: Annotated[
        str | None, typer.Option("--payload", help="JSON kept with the run.", show_default=False)
    ] = None,
    max_rounds: Annotated[
        int | None,
        typer.Option(
            "--max-rounds", min=1, max=1_000_000, help="Cap on role turns.", show_default=False
        ),
    ] = None,
    delay: InOption = None,
    at: AtOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run of a workflow now, or later with --in/--at (the daemon must be running)."""
    import orjson

    from nerve_core import (
        TimerResponse,
        TriggerWorkflowRequest,
        TriggerWorkflowResponse,
        require_name,
        split_trigger_payload,
    )

    from ..client import request
    from ..output import print_json, say
    from ..timers import timer_line
    from ..when import due_ms
    from ..workspace import find_workspace

    require_name(name, "workflow name")
    check_key(key, delayed=delay is not None or at is not None)
    try:
        data = None if payload is None else orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
    split = split_trigger_payload(data)
    if not split.ok:
        raise typer.BadParameter(split.error, param_hint="--payload")
    # The payload may carry the prompt and the round cap; the options win over it.
    workspace = find_workspace(workspace_root(root))
    message = TriggerWorkflowRequest(
        workflow=name,
        prompt=prompt or split.value.prompt or "",
        max_rounds=max_rounds if max_rounds is not None else split.value.max_rounds,
        payload=split.value.rest,
        at=due_ms(delay, at),
        key=key,
    )
    if message.at is not None:
        timer = request(workspace, message, TimerResponse).timer
        if as_json:
            print_json(timer.model_dump(by_alias=True))
        else:
            say(timer_line(timer))
        return
    response = request(workspace, message, TriggerWorkflowResponse)
    if as_json:
        answer = {"runId": response.run_id, "status": str(response.status)}
        print_json({**answer, "existing": response.existing})
    else:
        found = " (launched before with this key)" if response.existing else ""
        say(f"{response.run_id} {response.status}{found}")


@app.command("cancel")
def cancel(run_id: RunArgument, root: RootOption = None) -> None:
    """Cancel a queued or started run (the daemon must be running)."""
    from nerve_core import CancelWorkflowRequest, CancelWorkflowResponse

    from ..client import request
    from ..output import say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    response = request(workspace, CancelWorkflowRequest(run_id=run_id), CancelWorkflowResponse)
    say(f"{run_id} {response.status}")


@app.command("inspect")
def inspect(
    run_id: RunArgument,
    root: RootOption = None,
    limit: LimitOption = 50,
    offset: OffsetOption = 0,
    as_json: JsonOption = False,
) -> None:
    """A run's metadata and its log lines (status changes, messages, errors), oldest first."""
    import orjson

    from ..output import clip, format_ts, print_json, print_table, say

    with _logs(root) as maybe_store:
        store, run = _run(maybe_store, run_id)
        lines = store.logs(ref_id=run_id, limit=limit, offset=offset)
    if as_json:
        print_json(
            {
                "run": _run_json(run),
                "logs": [
                    {
                        "id": r.id,
                        "ts": r.ts,
                        "source": r.source,
                        "type": r.type,
                        "payload": r.payload,
                    }
                    for r in lines
                ],
            }
        )
        return
    fields = [
        ("run", run.run_id),
        ("workflow", run.workflow),
        ("status", run.status),
        ("prompt", run.prompt),
        ("rounds", f"{run.rounds} of at most {run.max_rounds}"),
        ("origin", run.origin),
        ("created", format_ts(run.created_at)),
        ("started", format_ts(run.started_at)),
        ("ended", format_ts(run.ended_at)),
    ]
    if run.error:
        fields.append(("error", run.error))
    for key, value in fields:
        say(f"{key:>8}: {value}")
    say("")
    rows = [(format_ts(r.ts), r.type, clip(orjson.dumps(r.payload).decode(), 80)) for r in lines]
    print_table(None, ["time", "type", "payload"], rows)
    if len(lines) == limit:
        say(f"(more may follow: --offset {offset + limit})")


@app.command("thread")
def thread(
    run_id: RunArgument,
    root: RootOption = None,
    before: Annotated[
        int | None, typer.Option("--before", min=1, help="Only rounds before this one.")
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option("--budget", min=1, help="Keep the most recent messages within CHARS."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The messages of a run's thread, START first."""
    import orjson
    from rich.markup import escape

    from nerve_core import START

    from ..output import format_ts, print_json, say

    with _logs(root) as maybe_store:
        store, _ = _run(maybe_store, run_id)
        page = store.thread(run_id, before=before, budget=budget)
    if as_json:
        print_json(
            {
                "runId": run_id,
                "total": page.total,
                "omitted": page.omitted,
                "messages": [
                    {"round": m.round, "role": m.role, "content": m.content, "ts": m.ts}
                    for m in page.messages
                ],
            }
        )
        return
    if page.omitted:
        say(f"({page.omitted} earlier messages left out for the budget)")
    for message in page.messages:
        role = "START" if message.role == START else message.role
        say(f"[bold]round {message.round} · {role}[/] · {format_ts(message.ts)}")
        content = message.content
        body = (
            content
            if isinstance(content, str)
            else orjson.dumps(content, option=orjson.OPT_INDENT_2).decode()
        )
        say(escape(body))
        say("")


@contextmanager
def _logs(root: Path | None) -> Iterator[LogStore | None]:
    """The workspace's logs.db, read-only, or None when nerve has not run there yet."""
    from ..stores import open_logs
    from ..workspace import find_workspace

    store = open_logs(find_workspace(workspace_root(root)))
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def _run(store: LogStore | None, run_id: str) -> tuple[LogStore, RunRecord]:
    """The store and the run `run_id` in it, or an error saying there is no such run."""
    from nerve_core.errors import NerveError

    run = None if store is None else store.run(run_id)
    if store is None or run is None:
        raise NerveError(f"no workflow run {run_id!r} here (see `nerve workflow list --all`)")
    return store, run


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "runId": run.run_id,
        "workflow": run.workflow,
        "status": str(run.status),
        "prompt": run.prompt,
        "maxRounds": run.max_rounds,
        "rounds": run.rounds,
        "origin": run.origin,
        "payload": run.payload,
        "createdAt": run.created_at,
        "startedAt": run.started_at,
        "endedAt": run.ended_at,
        "updatedAt": run.updated_at,
        "error": run.error,
    }
