"""Damaged files at start: a logs.db SQLite cannot read (its header zeroed) is refused at once in
one clear line that names the file, the cause and what to do, never a traceback, a hang or a
crash loop; a sense whose own database is damaged is that sense's load error, and its group-mate
computes on."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from .conftest import RETURN_ONE, Figure, daemon_workspace, kill_daemon, query, wait_for

pytestmark = pytest.mark.slow

CONFIG = """
senses:
  ok: {group: shared}
  hurt: {group: shared}
reflexes:
  - sense: ok
    interval: 100ms
"""


@pytest.fixture
def root() -> Iterator[Path]:
    with daemon_workspace(CONFIG, {"ok": RETURN_ONE, "hurt": RETURN_ONE}) as root:
        yield root


def signals(root: Path, source: str) -> int:
    return int(
        query(root, "SELECT count(*) FROM logs WHERE type='signal' AND source=?", source)[0][0]
    )


def zero_header(path: Path) -> None:
    """Zero SQLite's 100-byte header ("SQLite format 3" and the rest), with the WAL emptied
    first: a WAL still holding page 1 would mend it (SQLite reads the newer page from there)."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with path.open("r+b") as data:
        data.write(b"\0" * 100)


def first_run(root: Path) -> None:
    """Start, let both senses make their databases and some rows, stop."""
    assert run_nerve("start", cwd=root).code == 0
    assert run_nerve("sense", "trigger", "hurt", cwd=root).code == 0
    wait_for(lambda: signals(root, "hurt") == 1 and signals(root, "ok") > 3, timeout=30)
    assert run_nerve("stop", cwd=root).code == 0


def test_a_logs_db_with_a_zeroed_header_is_refused_in_one_line(root: Path, figure: Figure) -> None:
    first_run(root)
    logs_db = root / "data/logs.db"
    zero_header(logs_db)
    began = time.monotonic()
    started = run_nerve("start", cwd=root)
    refused_in = time.monotonic() - began
    assert started.code == 1
    assert "Traceback" not in started.err
    [line] = started.err.strip().splitlines()  # one line: what, where, why, what to do
    assert line == (
        f"error: nerve did not start: logs.db ({logs_db}) is damaged beyond what SQLite recovers "
        f"on its own (file is not a database): move it aside (mv {logs_db} {logs_db}.damaged) to "
        f"start it afresh, or restore it from a backup (sqlite3 {logs_db}.damaged .recover may "
        "save its rows)"
    )
    assert refused_in < 10, refused_in  # at once: no hang, no crash loop
    assert run_nerve("status", cwd=root).code == 3  # nothing left running
    logs_db.rename(logs_db.with_name("logs.db.damaged"))  # as it says
    assert run_nerve("start", cwd=root).code == 0
    wait_for(lambda: signals(root, "ok") > 0, timeout=30)
    assert run_nerve("stop", cwd=root).code == 0
    figure(
        "logs.db with its header zeroed",
        f"`nerve start` refused in {refused_in:.1f} s (the CLI's own start included) in one line "
        "naming the file, the cause and what to do; moved aside as it says, nerve started afresh",
    )


def test_a_damaged_sense_database_is_that_senses_load_error_only(root: Path) -> None:
    first_run(root)
    zero_header(root / "data/senses/hurt.db")
    assert run_nerve("start", cwd=root).code == 0
    before = signals(root, "ok")
    wait_for(lambda: signals(root, "ok") > before + 5, timeout=30)  # its group-mate computes
    listed = {
        s["name"]: s["state"]
        for s in json.loads(run_nerve("sense", "list", "--json", cwd=root).out)
    }
    assert listed == {"ok": "RUNNING", "hurt": "LOAD_ERROR"}
    [error] = [
        json.loads(payload)
        for (payload,) in query(
            root, "SELECT payload FROM logs WHERE type='compute.error' AND source='hurt'"
        )
    ]
    assert error["phase"] == "load"
    assert error["error"].startswith(
        f'the database of sense "hurt" ({root / "data/senses/hurt.db"}) is damaged'
    )
    assert query(root, "SELECT count(*) FROM logs WHERE type='worker.crash_loop'") == [(0,)]
    assert run_nerve("stop", cwd=root).code == 0


def computes(root: Path, sense: str) -> int:
    listed = run_nerve("sense", "list", "--json", cwd=root)
    assert listed.code == 0, listed.err
    return int(next(s["computes"] for s in json.loads(listed.out) if s["name"] == sense))


def flip_a_page_of_old_rows(path: Path) -> int:
    """Fill logs.db with old rows, then garble the cell pointers of a leaf page in their middle
    (as a flipped bit or a bad sector would): the file opens, its header is sound, and SQLite
    notices only when that page is read. Return the page's number."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        filler = [(1_000 + n, "filler", "signal", json.dumps({"n": n})) for n in range(3_000)]
        db.executemany("INSERT INTO logs (ts, source, type, payload) VALUES (?, ?, ?, ?)", filler)
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db.execute("PRAGMA page_size").fetchone()[0]
        leaves = [
            page
            for (page,) in db.execute(
                "SELECT pageno FROM dbstat WHERE name = 'logs' AND pagetype = 'leaf' ORDER BY pageno"
            )
        ]
    page = leaves[len(leaves) // 2]
    with path.open("r+b") as data:
        data.seek((page - 1) * size + 8)  # past the leaf's 8-byte header: its cell pointers
        data.write(b"\xff" * 64)
    return page


def test_a_logs_db_with_a_damaged_page_starts_says_so_and_repairs_as_it_says(
    root: Path, figure: Figure
) -> None:
    first_run(root)
    logs_db = root / "data/logs.db"
    page = flip_a_page_of_old_rows(logs_db)
    began = time.monotonic()
    assert run_nerve("start", cwd=root).code == 0  # the rest of the file is sound: it starts

    def damage() -> str | None:
        status = run_nerve("status", "--json", cwd=root)
        assert status.code == 0, status.err
        found: str | None = json.loads(status.out).get("storeDamage")
        return found

    wait_for(lambda: damage() is not None, timeout=30)
    said_in = time.monotonic() - began
    problem = damage()
    assert problem is not None
    assert problem.startswith(f"logs.db ({logs_db}) is damaged: ")  # what quick_check says:
    assert f"On tree page {page} " in problem or "malformed" in problem  # its page, or only this
    assert f"warning: {problem}" in run_nerve("status", cwd=root).out.replace("\n", " ")
    [(payload,)] = query(root, "SELECT payload FROM logs WHERE type = 'store.damaged'")
    assert json.loads(payload)["problems"][0] in problem
    before = computes(root, "ok")  # (not counted in logs.db: a scan would meet the damage)
    wait_for(lambda: computes(root, "ok") > before + 5, timeout=30)  # it computes on
    newest = query(root, "SELECT max(id) FROM logs")[0][0]
    wait_for(lambda: query(root, "SELECT max(id) FROM logs")[0][0] > newest + 5, timeout=30)

    assert problem.endswith("To repair: nerve stop; nerve store recover; nerve start")
    refused = run_nerve("store", "recover", cwd=root)
    assert refused.code == 1
    assert "already running" in refused.err  # not while nerve runs
    assert run_nerve("stop", cwd=root).code == 0
    repaired = run_nerve("store", "recover", cwd=root)
    assert repaired.code == 0, repaired.err
    assert "the damaged file is kept at data/logs.db.damaged" in repaired.out
    assert "–end" not in repaired.out, repaired.out  # only the damaged page's rows were skipped
    kept = query(root, "SELECT count(*) FROM logs WHERE source = 'filler'")[0][0]
    said = "SELECT count(*) FROM logs WHERE type = 'store.damaged'"
    assert query(root, said) == [(1,)], repaired.out  # the row that said so is kept
    assert run_nerve("start", cwd=root).code == 0
    wait_for(lambda: computes(root, "ok") > 10, timeout=30)  # the check has long ended
    assert damage() is None
    assert query(root, said) == [(1,)]  # and not said again
    assert run_nerve("stop", cwd=root).code == 0
    assert 2_500 < kept < 3_000  # the rows of the damaged page are gone, the others kept
    figure(
        "a page of logs.db garbled (cell pointers of one leaf among 3,000 old rows)",
        f"started as usual; the damage said in `nerve status`, health and a `store.damaged` row "
        f"{said_in:.1f} s after `nerve start` was run; new rows written meanwhile; repaired with "
        f"the commands it gives (`nerve store recover`): {kept} of 3,000 old rows kept",
    )


@pytest.mark.parametrize("damage", ["truncated", "torn"])
def test_a_wal_cut_short_or_torn_after_a_kill_is_sqlites_to_recover_and_nerve_starts(
    root: Path, damage: str, figure: Figure
) -> None:
    """The daemon killed with rows in its WAL, which is then cut mid-frame (a truncated file) or
    has its last frames garbled (a torn write): SQLite keeps the commits whose frames are whole
    and checksummed, and drops the rest; nerve starts as usual, sound, and writes on."""
    assert run_nerve("start", cwd=root).code == 0
    wait_for(lambda: signals(root, "ok") > 10, timeout=30)
    kill_daemon(root)
    wal = root / "data/logs.db-wal"
    size = wal.stat().st_size
    assert size > 32 * 1024, size  # a WAL with frames in it (its header is 32 bytes)
    with wal.open("r+b") as data:
        if damage == "truncated":
            data.truncate(size // 2 + 123)  # mid-frame
        else:
            data.seek(size - 6000)  # the last frames' bytes, as a write cut by the power
            data.write(bytes(range(256)) * 20)
    began = time.monotonic()
    started = run_nerve("start", cwd=root)
    started_in = time.monotonic() - began
    assert started.code == 0, started.err
    kept = signals(root, "ok")
    wait_for(lambda: signals(root, "ok") > kept + 5, timeout=30)  # it writes on
    assert run_nerve("stop", cwd=root).code == 0
    assert query(root, "PRAGMA integrity_check") == [("ok",)]
    figure(
        f"logs.db's WAL {'cut in half mid-frame' if damage == 'truncated' else 'torn at its end'}"
        " after a kill -9",
        f"`nerve start` in {started_in:.1f} s, SQLite kept the whole commits before the damage "
        f"({kept} signal rows of sense ok); written on, `integrity_check` ok",
    )
