"""`nerve sense`: look into senses and their databases."""

from __future__ import annotations

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
    from sqlalchemy import Connection, Engine

    from nerve_core import NerveConfig, ProgressInfo

app = typer.Typer(help="Look into senses and their databases.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="The sense's name.", show_default=False)]


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="sense")


@app.command("list")
def list_senses(root: RootOption = None, as_json: JsonOption = False) -> None:
    """The senses, with live figures from the daemon when it runs, from nerve.yaml otherwise."""
    from nerve_core import ListSensesRequest, ListSensesResponse
    from nerve_core.errors import DaemonNotRunning

    from ..client import request
    from ..output import format_ts, print_json, print_table, say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    try:
        live = request(workspace, ListSensesRequest(), ListSensesResponse).senses
    except DaemonNotRunning:
        live = None
    if live is not None:
        if as_json:
            print_json([sense.model_dump(mode="json", by_alias=True) for sense in live])
            return
        rows = [
            (
                s.name,
                s.group,
                s.state,
                s.worker_pid or "-",
                format_ts(s.last_run_at),
                s.last_status or "-",
                f"{s.last_duration_ms:.1f}" if s.last_duration_ms else "-",
                s.computes,
                s.errors,
                _progress(s.progress),
            )
            for s in live
        ]
        columns = [
            "sense",
            "group",
            "state",
            "pid",
            "last run",
            "status",
            "ms",
            "computes",
            "errors",
            "progress",
        ]
        print_table(None, columns, rows)
        return
    from nerve_core import load_nerve_config  # (its models and YAML only when nerve is down)

    config = load_nerve_config(workspace.config_path)
    static = [
        {
            "name": name,
            "group": sense.group,
            "schedule": _schedule(config, name),
            "throttle": _seconds(sense.throttle),
            "timeout": _seconds(sense.timeout),
        }
        for name, sense in config.senses.items()
    ]
    if as_json:
        print_json(static)
        return
    columns = ["sense", "group", "schedule", "throttle", "timeout"]
    print_table(None, columns, [tuple(row.values()) for row in static])
    say("(nerve is not running here: settings from nerve.yaml)")


def _progress(progress: ProgressInfo | None) -> str:
    """`40% copying` for a compute that reported its progress, `-` otherwise."""
    from ..output import format_progress

    return "-" if progress is None else format_progress(progress.fraction, progress.note)


def _schedule(config: NerveConfig, sense: str) -> str:
    parts = []
    for reflex in config.reflexes_of(sense):
        if reflex.interval is not None:
            parts.append(f"every {_seconds(reflex.interval)}")
        if reflex.on:
            parts.append("on " + ", ".join(reflex.on))
    return "; ".join(parts) or "manual only"


@app.command("trigger")
def trigger(
    name: NameArgument,
    root: RootOption = None,
    delay: InOption = None,
    at: AtOption = None,
    key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a compute of a sense now, or later with --in/--at (the daemon must be running)."""
    from nerve_core import OkResponse, TimerResponse, TriggerSenseRequest, require_name

    from ..client import request
    from ..output import print_json, say
    from ..timers import timer_line
    from ..when import due_ms
    from ..workspace import find_workspace

    require_name(name, "sense name")
    check_key(key, delayed=delay is not None or at is not None)
    due = due_ms(delay, at)
    workspace = find_workspace(workspace_root(root))
    if due is None:
        request(workspace, TriggerSenseRequest(sense=name, key=key), OkResponse)
        if as_json:
            print_json({"sense": name, "queued": True})
        else:
            say(f"queued a compute of {name}")
        return
    timer = request(workspace, TriggerSenseRequest(sense=name, at=due), TimerResponse).timer
    if as_json:
        print_json(timer.model_dump(by_alias=True))
    else:
        say(timer_line(timer))


def _seconds(value: float) -> str:
    from nerve_core import format_duration

    return format_duration(value)


@app.command("query")
def query(
    name: NameArgument,
    sql: Annotated[
        str | None, typer.Argument(help="One read-only SQL statement (default: list the tables).")
    ] = None,
    root: RootOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show at most.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Run read-only SQL on data/senses/<name>.db; a write of any kind is refused."""
    from sqlalchemy.exc import DBAPIError

    from nerve_core.errors import StoreError

    from ..output import print_json, print_table, say

    engine = _open(name, root)
    try:
        with engine.connect() as connection:
            if sql is None:
                columns, rows, more = ["table", "rows"], _table_counts(connection), False
            else:
                try:
                    result = connection.exec_driver_sql(sql)
                    columns = list(result.keys())
                    fetched = result.fetchmany(limit + 1)
                except DBAPIError as exc:
                    reason = str(exc.orig) if exc.orig is not None else str(exc)
                    if "not authorized" in reason or "authorization denied" in reason:
                        raise StoreError(
                            f"refused: `nerve sense query` is read-only ({reason})"
                        ) from None
                    raise StoreError(f"query failed: {reason}") from None
                more = len(fetched) > limit
                rows = [tuple(_cell(value) for value in row) for row in fetched[:limit]]
    finally:
        engine.dispose()
    if as_json:
        print_json([dict(zip(columns, row, strict=True)) for row in rows])
        return
    print_table(None, columns, rows)
    if more:
        say(f"(more than {limit} rows: showing the first {limit}; use --limit)")


@app.command("schema")
def schema(name: NameArgument, root: RootOption = None) -> None:
    """Print the CREATE statements of data/senses/<name>.db."""
    import sys

    engine = _open(name, root)
    try:
        with engine.connect() as connection:
            statements = connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                "ORDER BY type = 'table' DESC, name"
            ).scalars()
            sys.stdout.write("".join(f"{statement};\n" for statement in statements))
    finally:
        engine.dispose()


def _open(name: str, root: Any) -> Engine:
    from nerve_core import require_name
    from nerve_core.errors import StoreError
    from nerve_store import open_sense_db_readonly

    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    require_name(name, "sense name")
    if not workspace.sense_db(name).is_file():
        raise StoreError(
            f'sense "{name}" has no database yet ({workspace.relative(workspace.sense_db(name))}): '
            "it is created when the sense first runs"
        )
    return open_sense_db_readonly(workspace, name)


def _table_counts(connection: Connection) -> list[tuple[Any, ...]]:
    names = (
        connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name != '_nerve_migrations' "
            "ORDER BY name"
        )
        .scalars()
        .all()
    )
    quoted = {name: '"' + name.replace('"', '""') + '"' for name in names}
    return [
        (name, connection.exec_driver_sql(f"SELECT count(*) FROM {quoted[name]}").scalar())
        for name in names
    ]


def _cell(value: Any) -> Any:
    """A value that JSON and a table can both show (BLOBs as SQLite hex literals)."""
    if isinstance(value, bytes | memoryview):
        return f"x'{bytes(value).hex()}'"
    return value
