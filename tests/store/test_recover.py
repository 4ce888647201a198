"""`recover_logs_db`: a logs.db with damaged pages gives up only the rows on those pages."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from nerve_core import LogType
from nerve_core.errors import StoreError
from nerve_store import AppendLogs, LogRow, LogStore, quick_check
from nerve_store.recover import recover_logs_db

ROWS = 3_000


def filled(path: Path) -> Path:
    with LogStore.open(path) as store:
        rows = [LogRow("cpu", LogType.SIGNAL, {"n": n}) for n in range(ROWS)]
        store.apply([AppendLogs(rows)])
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


OUT_OF_RANGE = "out-of-range"  # every cell pointer past the page's end: SQLite raises
INTO_HEADER = "into-header"  # every one at the pointer array: garbage rows, no error, and a
# plain scan of the table ends there, as if the rows after it were not there


def garble_leaf(path: Path, which: float, how: str = OUT_OF_RANGE) -> tuple[int, int]:
    """Garble the cell pointers of the logs leaf at `which` (0..1) of the table; the ids it held."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        leaves = [
            page
            for (page,) in db.execute(
                "SELECT pageno FROM dbstat WHERE name = 'logs' AND pagetype = 'leaf' ORDER BY pageno"
            )
        ]
        page = leaves[min(len(leaves) - 1, int(len(leaves) * which))]
        ids = [row[0] for row in db.execute("SELECT id FROM logs ORDER BY id")]
        cells = db.execute(
            "SELECT ncell FROM dbstat WHERE name = 'logs' AND pageno = ?", (page,)
        ).fetchone()[0]
    pointer = b"\xff\xff" if how == OUT_OF_RANGE else (8 + 2 * cells - 2).to_bytes(2, "big")
    with path.open("r+b") as data:
        data.seek((page - 1) * size + 8)
        data.write(pointer * cells)
    return len(ids), cells


def ids(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return [row[0] for row in db.execute("SELECT id FROM logs ORDER BY id")]


@pytest.mark.parametrize("how", [OUT_OF_RANGE, INTO_HEADER])
@pytest.mark.parametrize("which", [0.5, 1.0], ids=["middle", "last"])
def test_only_the_rows_of_a_damaged_page_are_lost_and_the_damaged_file_is_kept_aside(
    tmp_path: Path, which: float, how: str
) -> None:
    path = filled(tmp_path / "logs.db")
    total, on_page = garble_leaf(path, which, how)
    assert quick_check(path) != []  # damaged, as SQLite sees it
    report = recover_logs_db(path)
    kept = ids(path)
    assert report.kept["logs"] == len(kept) == total - on_page
    assert kept == sorted(set(kept))  # ids as they were
    assert kept[0] == 1
    if kept[-1] == total - on_page:  # the page held the newest rows: nothing after says so
        assert report.skipped.get("logs", []) in ([], [(kept[-1] + 1, None)])
    else:  # exactly that page's rows, unreadable (or passed over: a gap in the ids)
        [(first, last)] = report.skipped["logs"]
        assert last is not None
        assert last - first + 1 == on_page
        assert set(range(first, last + 1)).isdisjoint(kept)
    assert report.damaged == tmp_path / "logs.db.damaged"
    assert report.damaged.is_file()
    LogStore.open(path).close()  # nerve opens it as its own
    assert quick_check(path) == []


def test_a_sound_logs_db_is_recovered_whole(tmp_path: Path) -> None:
    path = filled(tmp_path / "logs.db")
    before = ids(path)
    report = recover_logs_db(path)
    assert ids(path) == before
    assert report.skipped == {}
    assert report.kept["logs"] == ROWS


def test_a_file_that_is_no_database_cannot_be_recovered_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(b"\0" * 8192)
    with pytest.raises(StoreError, match="restore it from a backup"):
        recover_logs_db(path)
    assert path.read_bytes() == b"\0" * 8192
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs.db"]
