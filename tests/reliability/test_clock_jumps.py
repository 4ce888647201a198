"""A wall clock eight hours behind between two lifetimes of the daemon (libfaketime shifts it for
the middle one): runs queued by both are recovered, and run, in the order they were
acknowledged, not in the order of their wall-clock `created_at` (the later launch's is eight hours
earlier). The wall clock moved under one running daemon: test_wall_jumps.py; interval and cron
grids under a clock set forward and back on an injected clock (tests/daemon/test_timing.py), the
archive's cutoff in tests/daemon/test_archive_clock.py."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from .conftest import HOLD, Figure, daemon_workspace, kill_daemon, query, wait_for

pytestmark = pytest.mark.slow

CONFIG = "senses:\n  idle: {}\nworkflows:\n  hold: {concurrency: 1, overflow: queue}\n"
EIGHT_HOURS_S = 8 * 3600


def behind(seconds: int) -> dict[str, str]:
    """A process whose wall (and monotonic) clock reads `seconds` earlier, with its children."""
    [library] = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return {"LD_PRELOAD": library, "FAKETIME": f"-{seconds}"}


def launch(root: Path, prompt: str, env: dict[str, str] | None = None) -> str:
    done = run_nerve("workflow", "trigger", "hold", "--prompt", prompt, "--json", cwd=root, env=env)
    assert done.code == 0, done.err
    return str(json.loads(done.out)["runId"])


def started_order(root: Path, since_id: int) -> list[str]:
    rows = query(
        root,
        "SELECT ref_id FROM logs WHERE type = 'workflow.status' AND id > ?"
        " AND json_extract(payload, '$.status') = 'started' ORDER BY id",
        since_id,
    )
    return [run_id for (run_id,) in rows]


def test_runs_queued_across_a_clock_set_back_eight_hours_run_in_acknowledgement_order(
    figure: Figure,
) -> None:
    with daemon_workspace(
        CONFIG, {"idle": "def compute(ctx):\n    return 1\n"}, {"hold": HOLD}
    ) as root:
        assert run_nerve("start", cwd=root).code == 0
        first = [launch(root, "a1"), launch(root, "a2")]  # a1 holds the slot, a2 waits
        kill_daemon(root)
        shifted = behind(EIGHT_HOURS_S)
        started = run_nerve("start", cwd=root, env=shifted)
        assert started.code == 0, started.err
        later = launch(root, "b", env=shifted)  # acknowledged last, created 8 h "earlier"
        kill_daemon(root)
        created = dict(query(root, "SELECT run_id, created_at FROM workflow_runs"))
        assert created[later] < created[first[1]] - (EIGHT_HOURS_S - 60) * 1000
        assert later < first[1]  # its id sorts first too
        (root / "workflows/hold/go").touch()
        [(since,)] = query(root, "SELECT max(id) FROM logs")
        assert run_nerve("start", cwd=root).code == 0
        wait_for(lambda: len(started_order(root, since)) == 3, timeout=60)
        order = started_order(root, since)
        runs = lambda: dict(query(root, "SELECT run_id, status FROM workflow_runs"))  # noqa: E731
        wait_for(lambda: set(runs().values()) == {"completed"}, timeout=60)
        assert run_nerve("stop", cwd=root).code == 0
    assert order == [*first, later]
    figure(
        "runs queued across a wall clock set back 8 h between two daemon lifetimes (libfaketime)",
        "recovered and run in the order they were acknowledged (the last one's created_at and "
        "id 8 h earlier than the others'); all completed",
    )
