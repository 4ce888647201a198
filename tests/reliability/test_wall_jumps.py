"""The wall clock moved under one running daemon (libfaketime reading its offset from a file
each second, the monotonic clock left alone): set forward 8 h, then back 16 h, an interval sense
computes on its monotonic grid throughout (no burst, no pause, no catch-up), a run in flight
under a one-hour `timeout` and a ten-minute `stall_after` neither times out nor stalls, and
`nerve status` answers with an uptime that did not jump. (Delayed triggers and cron follow the
wall clock, as documented, looking at it each minute: tests/daemon/test_timing.py and
test_delayed_triggers.py move it on an injected clock.)"""

from __future__ import annotations

import glob
import itertools
import json
import time
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from .conftest import HOLD, Figure, daemon_workspace, query, wait_for

pytestmark = pytest.mark.slow

STAMP = """
import time
from pathlib import Path


def compute(ctx):
    with (Path(__file__).parent / "computes").open("a") as out:
        out.write(f"{time.monotonic()} {ctx.trigger}\\n")
    return 1
"""
CONFIG = """
senses:
  tick: {}
reflexes:
  - sense: tick
    interval: 1s
workflows:
  hold: {timeout: 1h, stall_after: 10m, on_stall: cancel}
"""
EIGHT_HOURS_S = 8 * 3600


def computes(root: Path, sense: str) -> list[tuple[float, str]]:
    path = root / f"senses/{sense}/computes"
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines()]
    return [(float(at), trigger) for at, trigger in rows]


def test_an_interval_grid_and_a_run_keep_real_time_while_the_wall_clock_jumps(
    figure: Figure,
) -> None:
    with daemon_workspace(CONFIG, {"tick": STAMP}, {"hold": HOLD}) as root:
        offset = root.parent / "faketime.rc"
        offset.write_text("+0\n")
        [library] = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
        env = {
            "LD_PRELOAD": library,
            "FAKETIME_TIMESTAMP_FILE": str(offset),
            "FAKETIME_CACHE_DURATION": "1",  # read again each second
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": str(Path(__file__).parent / "faketime_sleep"),  # see its docstring
        }
        assert run_nerve("start", cwd=root, env=env).code == 0
        wait_for(lambda: len(computes(root, "tick")) >= 3, timeout=30)
        launched = run_nerve("workflow", "trigger", "hold", "--prompt", "p", "--json", cwd=root)
        assert launched.code == 0, launched.err
        run_id = json.loads(launched.out)["runId"]
        jumps = []
        for shift in ("+8h", "-8h"):  # forward 8 h, then back 16 h
            time.sleep(2.5)
            offset.write_text(f"{shift}\n")
            jumps.append(time.monotonic())
            assert run_nerve("status", cwd=root, env=env).code == 0
        time.sleep(4)
        (root / "workflows/hold/go").write_text("")
        ended = "SELECT status FROM workflow_runs WHERE run_id = ?"
        wait_for(lambda: query(root, ended, run_id) == [("completed",)], timeout=30)
        status = json.loads(run_nerve("status", "--json", cwd=root, env=env).out)
        assert run_nerve("stop", cwd=root, env=env).code == 0  # (the compute in flight ends)
        signals = query(
            root,
            "SELECT count(*), max(ts) - min(ts) FROM logs WHERE type = 'signal' AND source = 'tick'",
        )
        stalls = query(root, "SELECT count(*) FROM logs WHERE type = 'workflow.stall'")
        ticks = computes(root, "tick")
    assert {kind for _, kind in ticks[1:]} == {"interval"}  # no catch-up for a jump
    around = [at for at, _ in ticks if jumps[0] - 3 < at < jumps[-1] + 4]
    gaps = [b - a for a, b in itertools.pairwise(around)]
    # One compute a second on the monotonic grid. On a busy machine (the whole suite at once) a
    # tick can be a second or more late and the next then runs right after it: that moves
    # computes, it adds or removes none. Ticks fired for the 8 h skipped would add computes (or
    # be catch-ups, above); a grid on the wall clock would pause 16 h after the jump back.
    window = jumps[-1] - jumps[0] + 7  # seconds, as `around` is cut
    assert window - 3 <= len(around) <= window + 2, (len(around), window, gaps)  # no burst
    assert max(gaps) < 5.0, gaps  # no pause
    assert stalls == [(0,)]  # nor stalled, nor timed out: it completed
    assert status["uptimeS"] < 120, status  # monotonic: the jumps did not move it
    assert signals[0][0] == len(ticks)
    assert signals[0][1] > 7 * 3600 * 1000  # its rows' wall-clock stamps did jump: 8 h apart
    figure(
        "wall clock set 8 h forward, then 16 h back, under one running daemon (libfaketime)",
        f"interval @1 s: {len(around)} computes in the {around[-1] - around[0]:.1f} s around the "
        f"jumps, gaps {min(gaps):.2f}–{max(gaps):.2f} s, none a catch-up; a run in flight under "
        f"`timeout: 1h` and `stall_after: 10m` completed, neither timed out nor stalled; "
        f"`nerve status` answered throughout, uptime {status['uptimeS']:.0f} s",
    )
