"""Salvage a logs.db with damaged pages: every row SQLite can still read, into a fresh logs.db.

The rows of each table are read in rowid order, with SQLite's `cell_size_check` on. A damaged
page may raise, or give garbage rows without an error (rowids out of order, or past the table's
last, read down the b-tree's right edge, which would end the scan there): either is a read that
failed.
Where a read fails, the next readable rowid is found by probing ahead (1, 2, 4, ... rowids on,
then halving back), so only the rows on the damaged pages are skipped; the ranges skipped are
reported. The fresh file gets nerve's schema first, then the rows (logs keep their ids); it is
checked and fsynced, then the damaged file is moved aside (`logs.db.damaged`) and the fresh one
renamed into its place.

The daemon must be stopped: the caller holds the workspace's lock.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from nerve_core.errors import StoreError

from ._files import fsync_dir
from .log_store import LogStore
from .schema import metadata

_BATCH = 1_000
_MAX_ROWID = 2**63 - 1


@dataclass
class RecoverReport:
    kept: dict[str, int] = field(default_factory=dict)  # table → rows copied
    # table → the rowid ranges that could not be read (None: to the end of the table), and
    # for logs, the ids missing between those kept
    skipped: dict[str, list[tuple[int, int | None]]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # table → rows that broke a constraint
    damaged: Path | None = None  # where the damaged file was moved


def recover_logs_db(path: Path) -> RecoverReport:
    if not path.is_file():
        raise StoreError(f"there is no logs.db to recover at {path}")
    source = sqlite3.connect(path)
    source.execute("PRAGMA cell_size_check = ON")  # more garbled pages raise, fewer give garbage
    try:
        tables = {name for (name,) in source.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        source.close()
        message = f"{path} cannot be read at all ({exc}): restore it from a backup"
        raise StoreError(message) from None
    if "logs" not in tables:
        source.close()
        raise StoreError(f"{path} holds no logs table: it is not a logs.db nerve wrote")
    fresh = path.with_name(path.name + ".recovering")
    _remove_with_sidecars(fresh)
    LogStore.open(fresh, synchronous="full").close()  # nerve's schema, current version
    report = RecoverReport()
    with contextlib.closing(source), contextlib.closing(sqlite3.connect(fresh)) as target:
        for table in metadata.sorted_tables:
            name = str(table.name)  # a plain str: orjson refuses the subclass SQLAlchemy gives
            columns = _shared_columns(source, target, name)
            if columns:
                _copy(source, target, name, columns, report)
        target.commit()
        _note_gaps(target, report)
        if target.execute("PRAGMA integrity_check").fetchall() != [("ok",)]:
            raise StoreError(f"the rows recovered from {path} do not make a sound database")
        target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(fresh, "rb+") as synced:
        os.fsync(synced.fileno())
    report.damaged = _aside(path)
    _remove_with_sidecars(fresh, keep_main=True)
    os.replace(fresh, path)
    fsync_dir(path.parent)
    return report


def _shared_columns(
    source: sqlite3.Connection, target: sqlite3.Connection, table: str
) -> list[str]:
    """The columns `table` has in both files; none if the damaged file cannot say."""
    try:
        theirs = [row[1] for row in source.execute(f'PRAGMA table_info("{table}")')]
    except sqlite3.DatabaseError:
        return []
    ours = {row[1] for row in target.execute(f'PRAGMA table_info("{table}")')}
    return [name for name in theirs if name in ours]


def _copy(
    source: sqlite3.Connection,
    target: sqlite3.Connection,
    table: str,
    columns: list[str],
    report: RecoverReport,
) -> None:
    names = ", ".join(f'"{name}"' for name in columns)
    insert = f'INSERT OR REPLACE INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'
    kept = 0
    for rows in _readable(source, f'SELECT rowid, {names} FROM "{table}"', table, report):
        try:
            target.executemany(insert, [row[1:] for row in rows])
            kept += len(rows)
        except sqlite3.IntegrityError:  # a row read from a damaged page breaks a constraint
            for row in rows:
                try:
                    target.execute(insert, row[1:])
                except sqlite3.IntegrityError:
                    report.refused[table] = report.refused.get(table, 0) + 1
                else:
                    kept += 1
    report.kept[table] = kept


def _readable(
    source: sqlite3.Connection, select: str, table: str, report: RecoverReport
) -> Iterator[list[tuple[object, ...]]]:
    """Batches of the rows that can be read, in rowid order; what cannot, in `report.skipped`.
    A damaged page may raise, or give garbage rows without an error (its cells pointing into the
    page's header, say): a rowid past the table's last is one, not a row to read on from."""
    after = -_MAX_ROWID - 1  # the last rowid read or skipped
    resumed_at = after  # where reading last resumed: failing there again, look past it
    last = _last_rowid(source, table)
    while True:
        try:
            rows = _ascending(
                source.execute(
                    f"{select} WHERE rowid >= ? ORDER BY rowid LIMIT {_BATCH}", (after + 1,)
                ).fetchall(),
                after,
                last,
            )
        except sqlite3.DatabaseError:
            rows = _row_by_row(source, select, after, last)
        else:
            if not rows:
                return  # the end of the table
        if not rows:  # the very next row cannot be read: skip to the next one that can
            resumed = _next_readable(source, select, max(after, resumed_at), last)
            skipped = report.skipped.setdefault(table, [])
            if resumed is None:
                skipped.append((after + 1, None))
                return
            if skipped and skipped[-1][1] == after:  # the same damage, looked past
                skipped[-1] = (skipped[-1][0], resumed - 1)
            else:
                skipped.append((after + 1, resumed - 1))
            after, resumed_at = resumed - 1, resumed
            continue
        yield rows
        after = cast(int, rows[-1][0])


def _last_rowid(source: sqlite3.Connection, table: str) -> int | None:
    """The table's largest rowid, read down the b-tree's right edge; None if it has no row, or
    that cannot be read, or gives garbage (a damaged last page: a row found after it)."""
    try:
        row = source.execute(f'SELECT max(rowid) FROM "{table}"').fetchone()
        if row is None or row[0] is None:
            return None
        last = cast(int, row[0])
        after = source.execute(
            f'SELECT rowid FROM "{table}" WHERE rowid > ? ORDER BY rowid LIMIT 1', (last,)
        ).fetchone()
    except sqlite3.DatabaseError:
        return None
    return last if after is None else None


def _note_gaps(target: sqlite3.Connection, report: RecoverReport) -> None:
    """Ids missing inside the logs kept: a damaged page can also be passed over without an
    error, and log ids have no gaps of their own (the archive removes the oldest only)."""
    gaps = target.execute(
        "SELECT previous + 1, id - 1 FROM (SELECT id, lag(id) OVER (ORDER BY id) AS previous"
        " FROM logs) WHERE id - previous > 1"
    ).fetchall()
    known = report.skipped.get("logs", [])
    seen = [(first, last) for first, last in gaps if (first, last) not in known]
    if seen:
        report.skipped["logs"] = sorted(known + seen, key=lambda span: span[0])


def _ascending(
    rows: list[tuple[object, ...]], after: int, last: int | None
) -> list[tuple[object, ...]]:
    """`rows` up to the first whose rowid does not rise, or passes the table's last: a damaged
    page can give rows out of order, or garbage, without an error (and reading on from them
    could go round in circles, or jump past the rows after the page)."""
    for index, row in enumerate(rows):
        if not after < cast(int, row[0]) <= (_MAX_ROWID if last is None else last):
            if index == 0:
                raise sqlite3.DatabaseError("rows out of rowid order")
            return rows[:index]
        after = cast(int, row[0])
    return rows


def _row_by_row(
    source: sqlite3.Connection, select: str, after: int, last: int | None
) -> list[tuple[object, ...]]:
    """The rows after `after` up to the first that cannot be read (or is garbage)."""
    rows: list[tuple[object, ...]] = []
    while len(rows) < _BATCH:
        start = after if not rows else cast(int, rows[-1][0])
        try:
            row = source.execute(
                f"{select} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (start + 1,)
            ).fetchone()
        except sqlite3.DatabaseError:
            break
        if row is None or not start < cast(int, row[0]) <= (_MAX_ROWID if last is None else last):
            break
        rows.append(row)
    return rows


def _next_readable(
    source: sqlite3.Connection, select: str, after: int, last: int | None
) -> int | None:
    """The rowid of the first row after `after` that can be read (up to `last`, the table's
    last rowid, when known); None if none after it can."""

    def first_from(rowid: int) -> int | None:
        try:
            row = source.execute(
                f"{select} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (rowid,)
            ).fetchone()
        except sqlite3.DatabaseError:
            return None
        if row is None or not rowid <= cast(int, row[0]) <= cap:
            return None  # nothing, or garbage (out of order, past the last rowid)
        return cast(int, row[0])

    cap = _MAX_ROWID // 2 if last is None else last
    if cap <= after:
        return None
    step = 1
    while first_from(probe := min(after + step, cap)) is None:  # ahead by 1, 2, 4, ... rowids
        if probe >= cap:
            return None
        step *= 2
    low, high = max(after + 1, after + step // 2), probe  # nothing from low on? high reads
    while low < high:  # back to the first rowid from which a row reads
        middle = (low + high) // 2
        if first_from(middle) is None:
            low = middle + 1
        else:
            high = middle
    return first_from(high)


def _aside(path: Path) -> Path:
    aside = path.with_name(path.name + ".damaged")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.damaged.{number}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):  # its WAL belongs to it: read above, moved with it
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists():
            os.replace(sidecar, aside.with_name(aside.name + suffix))
    return aside


def _remove_with_sidecars(path: Path, *, keep_main: bool = False) -> None:
    for suffix in ("-wal", "-shm", "-journal") if keep_main else ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
