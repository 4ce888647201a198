"""Another process holding logs.db's write lock (a backup, a database browser, `nerve store
archive`) never blocks the daemon's loop: its reads go through a read-only handle off the loop."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Figure, ask

pytestmark = pytest.mark.slow

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def test_a_write_lock_held_by_another_process_never_blocks_the_daemons_reads(
    daemon: Path, figure: Figure
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(daemon / "data/logs.db"), "20"],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        answer = ask(
            daemon,
            json.dumps({"type": "cancel-workflow", "runId": "20260101T000000-00000000"}).encode(),
        )
        waited = time.monotonic() - started
        assert holder.poll() is None  # answered while the lock was still held
        assert answer["ok"] is False
        error = answer["error"]
        assert isinstance(error, dict)
        assert error["code"] == "unknown_run", answer
        health = ask(daemon, b'{"type":"health"}')
        assert health["ok"] is True
        assert holder.poll() is None
        holder.kill()
    figure(
        "logs.db's write lock held by another process for 20 s",
        f"a cancel of an unknown run answered unknown_run in {waited * 1000:.0f} ms, health "
        "answered, both while the lock was held",
    )
