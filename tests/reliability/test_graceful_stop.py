"""SIGTERM while roles run, again and again: the daemon exits cleanly within a bounded time every
time (no traceback, its `kernel.stop` row written), and after each start the runs it stopped
resume and, in the end, every acknowledged run completes. `make faults` does it 100 times."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ..cli.conftest import run_nerve
from ..daemon.conftest import SLEEPER
from ..scale import scaled
from .conftest import Figure, daemon_workspace, ms, query, wait_for

pytestmark = pytest.mark.slow

CYCLES = scaled(2, 100)
CONFIG = "workflows:\n  slow: {concurrency: 4, overflow: queue}\n"


@pytest.fixture
def root() -> Iterator[Path]:
    with daemon_workspace(CONFIG, {}, {"slow": SLEEPER}) as root:  # its role sleeps `prompt` s
        yield root


def statuses(root: Path) -> dict[str, str]:
    return dict(query(root, "SELECT run_id, status FROM workflow_runs"))


def test_sigterm_mid_role_exits_cleanly_and_every_run_resumes(root: Path, figure: Figure) -> None:
    acknowledged: list[str] = []
    exits: list[float] = []
    for _ in range(CYCLES):
        assert run_nerve("start", cwd=root).code == 0
        pid = int((root / "nerve.pid").read_text())
        cycle = []
        for _ in range(2):  # two runs whose role sleeps 3 s: mid-role at the SIGTERM
            launched = run_nerve("workflow", "trigger", "slow", "--prompt", "3", "--json", cwd=root)
            assert launched.code == 0, launched.err
            cycle.append(json.loads(launched.out)["runId"])
        acknowledged += cycle
        wait_for(lambda c=cycle: all(statuses(root).get(r) == "started" for r in c), timeout=30)
        daemon = psutil.Process(pid)
        began = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        daemon.wait(timeout=30)
        exits.append(time.monotonic() - began)
    log = (root / "logs/nerve.log").read_text()
    assert "Traceback" not in log
    assert "the daemon failed" not in log
    stops = query(root, "SELECT count(*) FROM logs WHERE type = 'kernel.stop'")
    assert stops == [(CYCLES,)]  # every stop was graceful: its last row written

    assert run_nerve("start", cwd=root).code == 0
    wait_for(
        lambda: all(statuses(root).get(run) == "completed" for run in acknowledged), timeout=120
    )
    assert run_nerve("stop", cwd=root).code == 0
    resumed = query(
        root,
        "SELECT count(DISTINCT ref_id) FROM logs WHERE type = 'workflow.status'"
        " AND json_extract(payload, '$.reason') = 'resumed'",
    )[0][0]
    assert max(exits) < 10, ms(exits)
    figure(
        f"SIGTERM mid-role, {CYCLES} times (2 runs in flight each)",
        f"exit {ms(exits)}; every stop wrote kernel.stop, no traceback; "
        f"{len(acknowledged)}/{len(acknowledged)} acknowledged runs completed, {resumed} resumed "
        "after a start",
    )
