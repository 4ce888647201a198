"""The daily archive under a wall clock set forward while the daemon runs: a day moves into the
archive once it is `archive_after` old by the monotonic clock too, never early."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from nerve_core import LogType, Workspace, parse_nerve_config
from nerve_daemon.control.archive_schedule import ArchiveSchedule
from nerve_store import LogRow, LogStore

from .stepped_clock import SteppedClock

pytestmark = pytest.mark.anyio

DAY = 86_400.0
NOV_2 = datetime(2026, 11, 2, tzinfo=UTC).timestamp()


def archived(schedule_root: Path) -> list[str]:
    folder = schedule_root / "data/archive/logs"
    return sorted(path.stem for path in folder.glob("*.jsonl")) if folder.exists() else []


async def test_a_wall_clock_set_forward_eight_hours_moves_no_day_into_the_archive_early(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    with LogStore.open(workspace.logs_db) as store:  # rows on Nov 1 and Nov 2
        store.append(LogRow("cpu", LogType.SIGNAL, {"n": 1}, ts=round((NOV_2 - 3600) * 1000)))
        store.append(LogRow("cpu", LogType.SIGNAL, {"n": 2}, ts=round((NOV_2 + 3600) * 1000)))
    config = parse_nerve_config("store: {archive_after: 1d}\n").value
    # Nov 3, 20:00: Nov 1 ended more than a day ago (by 20 h); Nov 2 will have at Nov 4, 00:00.
    clock = SteppedClock(epoch=NOV_2 + DAY + 20 * 3600 - 100.0)
    schedule = ArchiveSchedule(workspace, lambda: config, lambda row: None, clock=clock)
    await schedule.archive_once()
    assert archived(tmp_path) == ["2026-11-01"]
    await clock.set_wall(clock.wall() + 8 * 3600)  # Nov 4, 04:00 by the wall clock
    await schedule.archive_once()
    assert archived(tmp_path) == ["2026-11-01"]  # Nov 2 is still a day old in 4 h, not now
    await clock.advance_to(clock.now() + 4 * 3600 - 1)
    await schedule.archive_once()
    assert archived(tmp_path) == ["2026-11-01"]
    await clock.advance_to(clock.now() + 2)  # Nov 4, 00:00 + 1 s by the monotonic clock
    await schedule.archive_once()
    assert archived(tmp_path) == ["2026-11-01", "2026-11-02"]


async def test_a_wall_clock_set_back_only_delays_the_archive(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    with LogStore.open(workspace.logs_db) as store:
        store.append(LogRow("cpu", LogType.SIGNAL, {"n": 1}, ts=round((NOV_2 + 3600) * 1000)))
    config = parse_nerve_config("store: {archive_after: 1d}\n").value
    clock = SteppedClock(epoch=NOV_2 + 2 * DAY + 3600 - 100.0)  # Nov 4, 01:00
    schedule = ArchiveSchedule(workspace, lambda: config, lambda row: None, clock=clock)
    await clock.set_wall(clock.wall() - 8 * 3600)  # Nov 3, 17:00: Nov 2 is not a day old
    await schedule.archive_once()
    assert archived(tmp_path) == []
    await clock.advance_to(clock.now() + 7 * 3600)  # Nov 4, 00:00 by the wall clock again
    await schedule.archive_once()
    assert archived(tmp_path) == ["2026-11-02"]
