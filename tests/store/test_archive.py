from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nerve_core import LogType
from nerve_core.errors import StoreError
from nerve_store import LogRow, LogStore, archive_logs, read_archive_day
from nerve_store.archive import DAY_MS

DAY1 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
DAY2 = DAY1 + DAY_MS
DAY3 = DAY2 + DAY_MS
TODAY = DAY1 + 10 * DAY_MS


def fill(store: LogStore) -> list[LogRow]:
    """Rows on three past days (with odd payloads) and today."""
    rows = []
    for day in (DAY1, DAY2, DAY3, TODAY):
        for n in range(50):
            payload = {"n": n, "f": n / 3, "s": 'é|\n"q"', "nested": [None, True, {"k": []}]}
            rows.append(
                LogRow(
                    f"s{n % 3}",
                    LogType.SIGNAL,
                    payload if n % 5 else None,
                    ref_id=f"r{n}" if n % 2 else None,
                    ts=day + n * 1000,
                    cause=f"s-1-{n}" if n % 3 else None,  # lineage goes with a row to its archive
                    parent=f"sig-{n}" if n % 4 else None,
                )
            )
    store.append(*rows)
    return rows


def all_rows(store: LogStore) -> dict[int, tuple[object, ...]]:
    return {
        r.id: (r.ts, r.source, r.type, r.ref_id, r.payload, r.cause, r.parent)
        for r in store.logs(limit=10**6)
    }


def archived(archive_dir: Path) -> dict[int, tuple[object, ...]]:
    found: dict[int, tuple[object, ...]] = {}
    for path in sorted(archive_dir.glob("*.jsonl")):
        for line in read_archive_day(path):
            row_id = int(line["id"])  # type: ignore[call-overload]
            assert row_id not in found, f"row {row_id} archived twice"
            found[row_id] = (
                line["ts"],
                line["source"],
                line["type"],
                line["ref_id"],
                line["payload"],
                line["cause"],
                line["parent"],
            )
    return found


def test_past_days_round_trip_exactly_and_today_stays(store: LogStore, tmp_path: Path) -> None:
    fill(store)
    before = all_rows(store)
    archive_dir = tmp_path / "archive"
    report = archive_logs(store.path, archive_dir, cutoff_ms=TODAY + 5)
    assert report.days == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert report.rows == 150
    assert sorted(p.name for p in archive_dir.iterdir()) == [
        "2026-11-01.jsonl",
        "2026-11-02.jsonl",
        "2026-11-03.jsonl",
    ]
    remaining = all_rows(store)
    assert {ts for ts, *_ in remaining.values()} == {TODAY + n * 1000 for n in range(50)}
    assert archived(archive_dir) | remaining == before
    assert store.meta("archive_watermark") == str(TODAY)


def test_a_second_run_changes_nothing(store: LogStore, tmp_path: Path) -> None:
    fill(store)
    archive_dir = tmp_path / "archive"
    archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    files = {p.name: p.read_bytes() for p in archive_dir.iterdir()}
    report = archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    assert (report.days, report.rows) == ([], 0)
    assert {p.name: p.read_bytes() for p in archive_dir.iterdir()} == files


def test_a_temp_file_left_by_a_crashed_run_is_removed_by_the_next(
    store: LogStore, tmp_path: Path
) -> None:
    """A run killed before its rename leaves `.<day>.jsonl.tmp`; the next run removes it, even
    for a day it has nothing left to archive."""
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    stale = archive_dir / ".2026-10-01.jsonl.tmp"
    stale.write_bytes(b'{"id": 1, "cut off mid-')
    fill(store)
    archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    assert not stale.exists()
    assert sorted(p.name for p in archive_dir.iterdir()) == [
        "2026-11-01.jsonl",
        "2026-11-02.jsonl",
        "2026-11-03.jsonl",
    ]


def test_only_complete_days_before_the_cutoff_day_are_archived(
    store: LogStore, tmp_path: Path
) -> None:
    fill(store)
    report = archive_logs(store.path, tmp_path / "archive", cutoff_ms=DAY2 + DAY_MS // 2)
    assert report.days == ["2026-11-01"]
    assert len(store.logs(until=DAY2, limit=1000)) == 0
    assert len(store.logs(since=DAY2, until=DAY3, limit=1000)) == 50


def test_rows_of_an_archived_day_that_arrive_late_are_added_without_duplicates(
    store: LogStore, tmp_path: Path
) -> None:
    fill(store)
    archive_dir = tmp_path / "archive"
    archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    store.append(LogRow("late", LogType.SIGNAL, {"late": True}, ts=DAY1 + 999))
    report = archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    assert (report.days, report.rows) == (["2026-11-01"], 1)
    lines = list(read_archive_day(archive_dir / "2026-11-01.jsonl"))
    assert len(lines) == 51
    assert lines[-1]["source"] == "late"


def test_a_day_file_cut_mid_line_is_read_with_a_clear_error_and_rewritten_without_loss(
    store: LogStore, tmp_path: Path
) -> None:
    fill(store)
    archive_dir = tmp_path / "archive"
    archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    day = archive_dir / "2026-11-01.jsonl"
    whole = day.read_bytes()
    cut = whole[: len(whole) - 40]  # the last row cut short, as a damaged disk might leave it
    day.write_bytes(cut)
    with pytest.raises(StoreError, match=r"2026-11-01\.jsonl:50: not a JSON row"):
        list(read_archive_day(day))
    # A late row of that day: the day is written again. The cut line goes aside, as it was;
    # every whole row stays, the late one is added.
    store.append(LogRow("late", LogType.SIGNAL, {"late": True}, ts=DAY1 + 999))
    report = archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    assert (report.days, report.rows) == (["2026-11-01"], 1)
    rows = list(read_archive_day(day))
    assert [row["source"] for row in rows][-1] == "late"
    assert len(rows) == 50  # 49 whole rows of the 50, and the late one
    aside = archive_dir / "2026-11-01.jsonl.damaged"
    assert aside.read_bytes() == cut[cut.rindex(b"\n") + 1 :] + b"\n"


def test_vacuum_compacts_after_archiving(store: LogStore, tmp_path: Path) -> None:
    fill(store)
    report = archive_logs(store.path, tmp_path / "archive", cutoff_ms=TODAY, vacuum=True)
    assert report.vacuumed
    assert store.count_logs() == 50


CRASH_SCRIPT = """
import os, sys
from pathlib import Path
import nerve_store.archive as archive

step = sys.argv[3]
def crash(name):
    if name == step:
        os._exit(17)  # die on the spot: no cleanup, no flush
archive._checkpoint = crash
archive.archive_logs(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[4]))
"""


@pytest.mark.parametrize("step", ["written", "renamed", "deleted"])
def test_a_crash_at_any_step_loses_and_duplicates_nothing(
    store: LogStore, tmp_path: Path, step: str
) -> None:
    fill(store)
    before = all_rows(store)
    archive_dir = tmp_path / "archive"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(store.path), str(archive_dir), step, str(TODAY)],
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 17
    # After the crash every row is somewhere, at most twice (in a file and still in logs.db).
    assert archived(archive_dir) | all_rows(store) == before
    archive_logs(store.path, archive_dir, cutoff_ms=TODAY)
    after_file, after_db = archived(archive_dir), all_rows(store)
    assert not set(after_file) & set(after_db)
    assert after_file | after_db == before
    assert [p.name for p in archive_dir.iterdir() if p.name.startswith(".")] == []


def test_an_archive_given_the_log_writer_deletes_through_it_while_the_writer_writes(
    tmp_path: Path,
) -> None:
    """The daemon's archive: its one writer makes the deletions (no second writer contends for
    the lock), reads go through a read-only handle, and rows written meanwhile all commit."""
    from nerve_store import DeleteArchived, LogWriter

    store = LogStore.open(tmp_path / "logs.db")
    fill(store)
    committed: list[object] = []
    with LogWriter(store) as writer:

        def commit(op: DeleteArchived) -> None:
            committed.append(op)
            writer.write(op)

        futures = [
            writer.append(LogRow("live", LogType.SIGNAL, n, ts=TODAY + n)) for n in range(200)
        ]
        report = archive_logs(store.path, tmp_path / "archive", TODAY, commit=commit)
        futures += [
            writer.append(LogRow("live", LogType.SIGNAL, n, ts=TODAY + n)) for n in range(200)
        ]
        for future in futures:
            future.result(timeout=30)
    assert report.days == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [len(op.ids) for op in committed] == [50, 50, 50, 0]  # three days, then the watermark
    with LogStore.open_readonly(store.path) as reader:
        left = reader.logs(limit=10**6)
        assert reader.meta("archive_watermark") == str(TODAY)
    assert all(row.ts >= TODAY for row in left)
    assert len([row for row in left if row.source == "live"]) == 400
    store.close()
