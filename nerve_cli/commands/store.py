"""`nerve store`: maintenance of data/ (the log archive, a damaged logs.db)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..options import JsonOption, RootOption, workspace_root

DEFAULT_OLDER_THAN_S = 30 * 86_400

app = typer.Typer(help="Maintain the stores under data/.", no_args_is_help=True)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="store")


@app.command("archive")
def archive(
    root: RootOption = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Archive whole UTC days older than this (default: store.archive_after, else 30d).",
            show_default=False,
        ),
    ] = None,
    vacuum: Annotated[bool, typer.Option("--vacuum", help="Compact logs.db afterwards.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Move old log rows to data/archive/logs/YYYY-MM-DD.jsonl (safe while the daemon runs)."""
    from nerve_core import load_nerve_config, parse_duration
    from nerve_core.errors import ConfigError
    from nerve_store import archive_logs, now_ms

    from ..output import format_ts, print_json, say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    if older_than is None:
        try:
            configured = load_nerve_config(workspace.config_path).store.archive_after
        except ConfigError:
            configured = None
        seconds = configured if configured is not None else DEFAULT_OLDER_THAN_S
    else:
        parsed = parse_duration(older_than)
        if not parsed.ok:
            raise typer.BadParameter(parsed.error, param_hint="--older-than")
        seconds = parsed.value
    if not workspace.logs_db.is_file():
        say("nothing to archive: nerve has not written logs in this workspace yet")
        return
    report = archive_logs(
        workspace.logs_db, workspace.archive_dir, now_ms() - round(seconds * 1000), vacuum=vacuum
    )
    if as_json:
        print_json(
            {
                "days": report.days,
                "rows": report.rows,
                "boundary": report.boundary_ms,
                "vacuumed": report.vacuumed,
                "archiveDir": str(workspace.archive_dir),
            }
        )
        return
    where = workspace.relative(workspace.archive_dir)
    if report.days:
        say(
            f"archived {report.rows} rows of {len(report.days)} days "
            f"({report.days[0]} to {report.days[-1]}) to {where}/"
        )
    else:
        say(f"nothing to archive: no rows before {format_ts(report.boundary_ms)}")
    if report.vacuumed:
        say("logs.db compacted")


@app.command("recover")
def recover(root: RootOption = None, as_json: JsonOption = False) -> None:
    """Salvage a logs.db with damaged pages into a fresh one (nerve must be stopped)."""
    import sqlite3

    from nerve_core.errors import StoreError
    from nerve_daemon.service import workspace_lock
    from nerve_store.recover import recover_logs_db

    from ..output import counted, print_json, say
    from ..workspace import find_workspace

    workspace = find_workspace(workspace_root(root))
    with workspace_lock(workspace):  # refused, saying so, while nerve runs here
        try:
            report = recover_logs_db(workspace.logs_db)
        except sqlite3.Error as exc:  # what the damage makes SQLite say, where nothing expected it
            raise StoreError(f"{workspace.logs_db} could not be recovered: {exc}") from None
    skipped = {
        table: [[first, last] for first, last in ranges] for table, ranges in report.skipped.items()
    }
    if as_json:
        print_json(
            {
                "kept": report.kept,
                "skipped": skipped,
                "refused": report.refused,
                "damaged": str(report.damaged),
            }
        )
        return
    kept = ", ".join(f"{table} {count:,}" for table, count in report.kept.items() if count)
    say(f"logs.db recovered: rows kept: {kept}")
    for table, ranges in report.skipped.items():
        spans = ", ".join(
            f"{'start' if a <= -(2**63) + 1 else a}–{'end' if b is None else b}" for a, b in ranges
        )
        say(f"  {table}: {counted(len(ranges), 'range')} of rowids could not be read: {spans}")
    for table, count in report.refused.items():
        say(f"  {table}: {counted(count, 'row')} read but refused (a constraint broken)")
    assert report.damaged is not None
    say(f"the damaged file is kept at {workspace.relative(report.damaged)}")
