"""A sense group and a workflow whose workers die on every start: respawning stops after 5 exits
in 60 s, and the daemon stays healthy and says so (`health`, `nerve status`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from .conftest import RETURN_ONE, Figure, daemon_workspace, query, wait_for

pytestmark = pytest.mark.slow

DIES = "import os\nos._exit(1)\n"


@pytest.fixture
def root() -> Iterator[Path]:
    with daemon_workspace(
        "senses:\n  doomed: {group: broken}\n  fine: {group: good}\nworkflows:\n  cursed: {}\n",
        {"doomed": DIES, "fine": RETURN_ONE},
        {"cursed": DIES},
    ) as root:
        yield root


def rows(root: Path, type_: str) -> list[dict[str, object]]:
    found = query(root, "SELECT payload FROM logs WHERE type = ? ORDER BY id", type_)
    return [json.loads(payload) for (payload,) in found]


def test_crash_loops_stop_respawning_and_the_daemon_says_so_and_serves_on(
    root: Path, figure: Figure
) -> None:
    began = time.monotonic()
    assert run_nerve("start", cwd=root).code == 0
    wait_for(lambda: len(rows(root, "worker.crash_loop")) == 2, timeout=60)
    gave_up = time.monotonic() - began
    time.sleep(1.0)  # a respawn after giving up would show within the first backoff

    exits = rows(root, "worker.exit")
    sense_exits = [row for row in exits if row.get("group") == "broken"]
    workflow_exits = [row for row in exits if row.get("workflow") == "cursed"]
    assert (len(sense_exits), len(workflow_exits)) == (5, 5)
    assert len(rows(root, "worker.crash_loop")) == 2

    health = json.loads(run_nerve("status", "--json", cwd=root).out)
    states = {worker["name"]: worker["state"] for worker in health["workers"]}
    assert states == {
        "fork-server": "RUNNING",
        "broken": "FATAL",
        "good": "RUNNING",
        "cursed": "FATAL",
    }
    status = run_nerve("status", cwd=root)
    assert status.code == 0
    assert "crash-looped, not respawning: broken, cursed" in status.out

    assert run_nerve("sense", "trigger", "fine", cwd=root).code == 0  # the rest serves on
    wait_for(lambda: rows(root, "signal"), timeout=20)
    launched = json.loads(run_nerve("workflow", "trigger", "cursed", "--json", cwd=root).out)
    assert launched["status"] == "dropped"  # recorded, with the reason, not lost in a queue
    assert run_nerve("stop", cwd=root).code == 0
    figure(
        "crash loops (a group and a workflow dying at every start)",
        f"respawning stopped after 5 exits each ({gave_up:.1f} s from start, window 60 s); "
        "no respawn after; status names both; the healthy group serves on",
    )
