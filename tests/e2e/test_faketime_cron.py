"""Cron on a real daemon whose wall clock libfaketime shifts: the daemon starts seconds before
Berlin's spring-forward gap and a tick inside the skipped hour fires once, at the end of the gap;
then it is killed with `kill -9` and started four days later, and each `catch_up` policy computes
what it promises for the ticks it missed."""

from __future__ import annotations

import calendar
import glob
import json
import os
import signal
import time
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from ..daemon.conftest import build_workspace
from .conftest import scratch_folder, wait_for

pytestmark = pytest.mark.slow

CONFIG = """
senses:
  last: {}
  every: {}
reflexes:
  - sense: last
    cron: "30 2 * * *"
    timezone: Europe/Berlin
  - sense: every
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    catch_up: all
"""

# Each compute appends its trigger and the (shifted) wall time it ran at.
NOTE = """
import time
from pathlib import Path

def compute(ctx):
    with open(Path(__file__).parent / "computes", "a") as out:
        out.write(f"{ctx.trigger} {time.time()}\\n")
"""


def utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")))


def shifted_to(moment: float) -> dict[str, str]:
    """The environment that starts a process with its wall clock reading `moment` and running on
    from there. libfaketime moves the monotonic clock by as much (left alone, its absolute sleeps
    on the monotonic clock fail with EINVAL): the same in every process of the daemon."""
    [library] = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return {
        "LD_PRELOAD": library,
        "FAKETIME": f"{moment - time.time():+.0f}",
    }


def computes(root: Path, sense: str) -> list[tuple[str, float]]:
    path = root / "senses" / sense / "computes"
    lines = path.read_text().split("\n") if path.exists() else []
    return [(line.split()[0], float(line.split()[1])) for line in lines if line]


def next_fires(root: Path, sense: str) -> list[int]:
    explained = run_nerve("explain", "sense", sense, "--json", cwd=root)
    assert explained.code == 0, explained.err
    [timer] = [t for t in json.loads(explained.out)["reflexes"] if "cron" in t]
    return list(timer["next"])


def test_a_shifted_clock_fires_in_the_dst_gap_once_and_catches_up_after_kill_9() -> None:
    gap_ends = utc("2026-03-29 01:00:00")  # 02:00 CET becomes 03:00 CEST
    with scratch_folder() as folder:
        root = build_workspace(folder / "ws", CONFIG, {"last": NOTE, "every": NOTE})
        started = run_nerve("start", cwd=root, env=shifted_to(gap_ends - 8))
        assert started.code == 0, started.err
        # 02:30 does not exist that night: the tick fires once, at 03:00 CEST.
        wait_for(lambda: computes(root, "last") and computes(root, "every"))
        for sense in ("last", "every"):
            [(trigger, at)] = computes(root, sense)
            assert trigger == "cron"
            assert gap_ends <= at < gap_ends + 5, at - gap_ends
            # The next tick is the next night's 02:30 CEST, 00:30 UTC: not a second one now.
            assert next_fires(root, sense)[0] == utc("2026-03-30 00:30:00") * 1000

        os.kill(int((root / "nerve.pid").read_text()), signal.SIGKILL)
        wait_for(lambda: run_nerve("status", cwd=root).code != 0)
        # Back four days later, at noon: the ticks of the 30th, 31st, 1st and 2nd were missed.
        started = run_nerve("start", cwd=root, env=shifted_to(utc("2026-04-02 12:00:00")))
        assert started.code == 0, started.err
        wait_for(lambda: len(computes(root, "last")) == 2 and len(computes(root, "every")) == 5)
        # A manual compute queued now runs after whatever the start still had queued: had a
        # policy computed more than it promises, those computes would come before it.
        for sense in ("last", "every"):
            assert run_nerve("sense", "trigger", sense, cwd=root).code == 0
        wait_for(lambda: computes(root, "last")[-1][0] == "manual")
        wait_for(lambda: computes(root, "every")[-1][0] == "manual")
        assert [trigger for trigger, _ in computes(root, "last")] == ["cron", "catch_up", "manual"]
        assert [trigger for trigger, _ in computes(root, "every")] == [
            "cron",
            *["catch_up"] * 4,
            "manual",
        ]
        assert next_fires(root, "last")[0] == utc("2026-04-03 00:30:00") * 1000
        assert run_nerve("stop", cwd=root).code == 0
