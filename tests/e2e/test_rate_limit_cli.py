"""A rate limit as a user sees it: `nerve status` shows each name in use, its rate, the calls in
its window and how long the next call would wait; `--json` carries the same as `rateLimits`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from ..cli.conftest import run_nerve
from ..daemon.conftest import build_workspace
from .conftest import scratch_folder

pytestmark = pytest.mark.slow

# One call an hour: the first goes at once, then the window is full for an hour.
HOURLY = """
from pathlib import Path

def compute(ctx):
    ctx.limit("ticketing", "1/h")
    (Path(__file__).parent / "called").touch()
"""


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_status_shows_the_rate_limits_in_use() -> None:
    with scratch_folder() as folder:
        root = build_workspace(folder / "ws", "senses:\n  opener: {}\n", {"opener": HOURLY})
        assert run_nerve("start", cwd=root).code == 0
        assert run_nerve("sense", "trigger", "opener", cwd=root).code == 0
        wait_for((root / "senses/opener/called").exists)
        status = json.loads(run_nerve("status", "--json", cwd=root).out)
        limit = status["rateLimits"]["ticketing"]
        assert limit["rate"] == "1/1h"
        assert limit["inWindow"] == 1
        assert 3500 < limit["nextFreeInS"] <= 3600
        shown = run_nerve("status", cwd=root).out
        assert "rate limits: ticketing 1/1h (1 in window, next free in 3" in shown
        assert run_nerve("stop", cwd=root).code == 0
