"""Resources run out: a leaking sense is restarted at its limit as often as it leaks; a full disk
under data/ stalls logs.db, and the daemon serves on, says why, and loses nothing it held."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from nerve_core import LogType, WorkerState

from ..cli.conftest import run_nerve
from ..daemon.conftest import running, wait_until
from .conftest import ECHO, RETURN_ONE, Figure, daemon_workspace, kill_daemon, query, wait_for

pytestmark = pytest.mark.slow

LEAKY = """
hoard = []

def compute(ctx):
    hoard.append(bytearray(32 * 1024 * 1024))  # 32 MB more on every compute, never freed
    for block in hoard:
        block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    return len(hoard)
"""
RESTARTS = 6  # more than a crash loop's 5: a limit kill is the kernel's, not a crash


@pytest.mark.anyio
async def test_a_sense_leaking_memory_is_restarted_at_its_limit_every_time(
    ws: Callable[..., Path], figure: Figure
) -> None:
    root = ws(
        """
        senses:
          leaky: {group: leaks}
        reflexes:
          - sense: leaky
            interval: 100ms
        groups:
          leaks:
            limits: {memory: 100MB}
        """,
        {"leaky": LEAKY},
    )
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: len(recorder.of(LogType.WORKER_LIMIT)) >= RESTARTS, timeout=60)
        after = len(recorder.of(LogType.SIGNAL, "leaky"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "leaky")) > after)
        assert kernel.groups["leaks"].state is WorkerState.RUNNING
    limits = [row.payload for row in recorder.of(LogType.WORKER_LIMIT)]
    assert all(row["resource"] == "memory" and row["value"] > row["limit"] for row in limits)
    exits = [row.payload for row in recorder.of(LogType.WORKER_EXIT)]
    assert [row["reason"] for row in exits[:RESTARTS]] == ["limit"] * RESTARTS
    assert recorder.of(LogType.WORKER_CRASH_LOOP) == []
    peak = max(row["value"] for row in limits) / 1e6
    figure(
        "sense leaking 32 MB a compute, group limit 100 MB",
        f"restarted {len(limits)} times (never a crash loop), largest RSS seen {peak:.0f} MB; "
        "computes went on",
    )


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A workspace whose data/ is an 8 MB tmpfs of its own, so it can be filled."""
    config = "senses:\n  tick: {}\nreflexes:\n  - sense: tick\n    interval: 50ms\n"
    config += "workflows:\n  echo: {}\n"
    with daemon_workspace(config, {"tick": RETURN_ONE}, {"echo": ECHO}) as root:
        data = root / "data"
        data.mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(data)]
        if subprocess.run(mount, capture_output=True, check=False).returncode != 0:
            pytest.skip(
                "this machine cannot mount a tmpfs (needs root); the writer's stall is covered "
                "with a simulated full disk in tests/store/test_log_writer.py"
            )
        try:
            yield root
        finally:
            kill_daemon(root)
            subprocess.run(["umount", "-l", str(data)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the file system is full."""
    with path.open("wb") as out, pytest.raises(OSError, match="No space left") as raised:
        write_forever(out)
    assert raised.value.errno == errno.ENOSPC


def write_forever(out: BinaryIO) -> None:
    chunk = b"\0" * 65536
    while True:
        out.write(chunk)
        out.flush()


def signals_between(root: Path, since_ms: int, until_ms: int) -> int:
    sql = "SELECT count(*) FROM logs WHERE type = 'signal' AND ts >= ? AND ts < ?"
    return int(query(root, sql, since_ms, until_ms)[0][0])


def store_error(root: Path) -> str | None:
    status = run_nerve("status", "--json", cwd=root)
    assert status.code == 0, status.err
    error: str | None = json.loads(status.out).get("storeError")
    return error


def test_a_full_disk_stalls_logs_db_and_the_daemon_serves_on_and_catches_up(
    small_disk: Path, figure: Figure
) -> None:
    root = small_disk
    assert run_nerve("start", cwd=root).code == 0
    wait_for(lambda: signals_between(root, 0, 2**62) > 5, timeout=30)

    fill(root / "data" / "filler")
    full_at = int(time.time() * 1000)
    wait_for(lambda: store_error(root) is not None, timeout=30)
    problem = store_error(root)
    assert problem is not None
    assert "database or disk is full" in problem
    status = run_nerve("status", cwd=root)
    assert "warning: logs.db cannot be written: database or disk is full" in status.out
    refused = run_nerve("workflow", "trigger", "echo", cwd=root)
    assert refused.code == 1
    assert "logs.db cannot be written" in refused.err
    assert "nothing was recorded" in refused.err
    assert run_nerve("sense", "list", cwd=root).code == 0
    time.sleep(1.0)  # computes go on; their rows are held

    (root / "data" / "filler").unlink()
    freed_at = int(time.time() * 1000)
    wait_for(lambda: store_error(root) is None, timeout=30)
    held = signals_between(root, full_at, freed_at)
    assert held >= 10  # ~20 a second were computed while the disk was full, and kept
    launched = run_nerve("workflow", "trigger", "echo", "--prompt", "back", "--json", cwd=root)
    assert launched.code == 0, launched.err
    assert run_nerve("stop", cwd=root).code == 0
    with sqlite3.connect(root / "data/logs.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        [(payload,)] = db.execute("SELECT payload FROM logs WHERE type = 'store.stall'")
    stall = json.loads(payload)
    assert stall["dropped"] == 0
    assert "disk is full" in stall["error"]
    log = (root / "logs/nerve.log").read_text()
    assert "logs.db cannot be written: database or disk is full" in log
    assert "logs.db is writable again" in log
    figure(
        "data/ full (8 MB tmpfs)",
        f"logs.db stalled {stall['seconds']:.1f} s: status and sense list served, "
        f"trigger-workflow refused with the reason, {held} signal rows held and committed "
        "when space returned, 0 dropped; integrity_check ok",
    )
