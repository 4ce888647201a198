"""Archiving old log rows to `data/archive/logs/YYYY-MM-DD.jsonl`, one UTC day a file.

For each complete UTC day older than the cutoff, oldest first:

1. the day's rows are written, one JSON object a line with every column (the payload embedded
   as the JSON it was stored as), to a temp file, which is fsynced and renamed over the day's
   file, and the folder is fsynced;
2. then, in one transaction, those rows are deleted and the watermark in `meta` advances.

A crash at any point loses no row: until step 2 commits, every row is still in logs.db. Re-running
never duplicates one: if the day's file exists (a crash between the rename and the delete, or
rows of that day that arrived late), its rows are kept and only rows whose ids it does not hold
are added. Only rows read in step 1 are deleted (by id), so rows written meanwhile stay. Safe
while the daemon runs: SQLite serialises the delete with the daemon's own writes. A line of the
day's file that does not read as a row (cut short by a damaged disk, say) is moved, as it was,
to `YYYY-MM-DD.jsonl.damaged` beside it when the day is written again.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Row, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from nerve_core.errors import StoreError

from . import _sqlite
from ._files import fsync_dir, make_dirs, os_error_text
from .log_store import DeleteArchived
from .schema import META_ARCHIVE_WATERMARK, logs, migrate, set_meta

DAY_MS = 86_400_000


@dataclass
class ArchiveReport:
    days: list[str] = field(default_factory=list)
    rows: int = 0
    boundary_ms: int = 0  # every row older than this is archived
    vacuumed: bool = False


# Commits the deletion of archived rows and the new watermark, in one transaction.
Commit = Callable[[DeleteArchived], None]


def archive_logs(
    logs_db: Path,
    archive_dir: Path,
    cutoff_ms: int,
    *,
    vacuum: bool = False,
    commit: Commit | None = None,
) -> ArchiveReport:
    """Archive the complete UTC days before the day holding `cutoff_ms` (ms since the epoch).

    `commit`: how the deletions are written. The daemon passes its log writer's (`LogWriter.write`),
    so its one writer makes them, and reads go through a read-only handle; without it (`nerve
    store archive`), this opens a writer of its own."""
    try:
        return _archive(logs_db, archive_dir, cutoff_ms, vacuum, commit)
    except (OSError, sqlite3.Error, SQLAlchemyError) as exc:  # a full disk, an I/O error
        reason = getattr(exc, "orig", None) or exc
        if isinstance(reason, OSError):
            reason = os_error_text(reason)
        raise StoreError(
            f"the archive stopped, nothing it had not finished was moved: {reason}"
        ) from None


def _archive(
    logs_db: Path, archive_dir: Path, cutoff_ms: int, vacuum: bool, commit: Commit | None
) -> ArchiveReport:
    boundary = cutoff_ms - cutoff_ms % DAY_MS
    report = ArchiveReport(boundary_ms=boundary)
    make_dirs(archive_dir)
    for stale in archive_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)  # left by a run that crashed before its rename
    own = commit is None
    if own:
        engine = _sqlite.open_writer(logs_db)
        commit = functools.partial(_commit_own, engine)
    else:
        engine = _sqlite.open_reader(logs_db, what="logs.db")
    assert commit is not None
    try:
        if own:
            with engine.begin() as connection:
                migrate(connection)
        while True:
            with engine.connect() as connection:
                oldest = connection.execute(
                    select(func.min(logs.c.ts)).where(logs.c.ts < boundary)
                ).scalar()
            if oldest is None:
                break
            day_start = oldest - oldest % DAY_MS
            day = _day_name(day_start)
            written = _archive_day(
                engine.connect, commit, archive_dir, day, day_start, day_start + DAY_MS
            )
            report.days.append(day)
            report.rows += written
        commit(DeleteArchived((), boundary))
        if vacuum:
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
            finally:
                raw.close()
            report.vacuumed = True
    finally:
        engine.dispose()
    return report


def _commit_own(engine: Engine, op: DeleteArchived) -> None:
    with engine.begin() as connection:
        _delete(connection, list(op.ids))
        set_meta(connection, META_ARCHIVE_WATERMARK, str(op.watermark))


def _archive_day(
    connect: Callable[[], Connection],
    commit: Commit,
    archive_dir: Path,
    day: str,
    start: int,
    end: int,
) -> int:
    """Archive the rows of one day; return how many were added to its file."""
    target = archive_dir / f"{day}.jsonl"
    temp = archive_dir / f".{day}.jsonl.tmp"
    held = _ids_in(target)
    added = 0
    with connect() as connection:
        rows = connection.execute(
            select(logs).where(logs.c.ts >= start, logs.c.ts < end).order_by(logs.c.id)
        ).all()
    read_ids = [row.id for row in rows]
    damaged: list[bytes] = []
    with temp.open("wb") as out:
        if target.exists():
            with target.open("rb") as existing:
                for line in existing:
                    if not line.strip():
                        continue
                    if _row_id(line) is None:  # cut short or garbled: kept aside, not carried
                        damaged.append(line if line.endswith(b"\n") else line + b"\n")
                        continue
                    out.write(line if line.endswith(b"\n") else line + b"\n")
        for row in rows:
            if row.id in held:
                continue
            out.write(_line(row))
            added += 1
        out.flush()
        os.fsync(out.fileno())
    _checkpoint("written")
    if damaged:  # appended, synced: what was there is never lost, only moved out of the way
        aside = archive_dir / f"{day}.jsonl.damaged"
        with aside.open("ab") as out:
            out.writelines(damaged)
            out.flush()
            os.fsync(out.fileno())
    os.replace(temp, target)
    fsync_dir(archive_dir)
    _checkpoint("renamed")
    commit(DeleteArchived(read_ids, end))
    _checkpoint("deleted")
    return added


def _delete(connection: Connection, ids: list[int]) -> None:
    for chunk in _chunks(ids, 500):
        connection.execute(delete(logs).where(logs.c.id.in_(chunk)))


def _line(row: Row[Any]) -> bytes:
    record = {column: getattr(row, column) for column in ("id", "ts", "source", "type", "ref_id")}
    record["payload"] = None if row.payload is None else orjson.Fragment(row.payload)
    record["cause"] = row.cause
    record["parent"] = row.parent
    return orjson.dumps(record) + b"\n"


def _ids_in(path: Path) -> set[int]:
    """The row ids a day's file holds (a line that does not read as a row holds none)."""
    if not path.exists():
        return set()
    with path.open("rb") as lines:
        return {row_id for line in lines if (row_id := _row_id(line)) is not None}


def _row_id(line: bytes) -> int | None:
    """The id of the row on `line`, or None for a blank line or one that is not a row."""
    if not line.strip():
        return None
    try:
        row = orjson.loads(line)
        return int(row["id"]) if isinstance(row, dict) else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def read_archive_day(path: Path) -> Iterator[dict[str, object]]:
    """The rows of one archive file, as written. A line that is not a row (cut short by a
    damaged disk, say) raises `StoreError` naming the file and the line."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise StoreError(f"{path}:{number}: not a JSON row ({exc})") from None


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _day_name(day_start_ms: int) -> str:
    return datetime.fromtimestamp(day_start_ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _checkpoint(step: str) -> None:
    """A named point between the steps above. It does nothing; the crash-safety tests replace
    it to kill the process exactly there."""
