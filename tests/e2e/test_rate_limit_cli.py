"""A rate limit as a user sees it: `nerve status` shows each name in use, its rate, the calls in
its window, how long the next call would wait and who waits; `--json` carries the same as
`rateLimits`; `nerve explain sense` says its compute waits in `ctx.limit()` and until when."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from ..cli.conftest import run_nerve
from ..daemon.conftest import build_workspace
from .conftest import scratch_folder, wait_for

pytestmark = pytest.mark.slow

# One call an hour: the first goes at once, the second waits an hour.
HOURLY = """
from pathlib import Path

def compute(ctx):
    ctx.limit("ticketing", "1/h")
    (Path(__file__).parent / "called").touch()
    ctx.limit("ticketing", "1/h")
"""


def test_status_shows_the_rate_limits_in_use() -> None:
    with scratch_folder() as folder:
        config = "senses:\n  opener: {timeout: 2h}\n"
        root = build_workspace(folder / "ws", config, {"opener": HOURLY})
        assert run_nerve("start", cwd=root).code == 0
        assert run_nerve("sense", "trigger", "opener", cwd=root).code == 0
        wait_for((root / "senses/opener/called").exists)
        status = json.loads(run_nerve("status", "--json", cwd=root).out)

        def explained() -> dict[str, object]:
            done = run_nerve("explain", "sense", "opener", "--json", cwd=root)
            assert done.code == 0, done.err
            return dict(json.loads(done.out)["now"].get("running", {}))

        wait_for(lambda: "rateLimit" in explained())
        waits = explained()["rateLimit"]
        assert isinstance(waits, dict)
        assert waits["name"] == "ticketing"
        assert 3500 < waits["until"] / 1000 - time.time() <= 3600
        said = run_nerve("explain", "sense", "opener", cwd=root).out
        assert "waiting in ctx.limit('ticketing') until " in said
        assert (
            "its compute waits in ctx.limit('ticketing') until "
            in run_nerve("explain", "sense", "opener", "--why-not", cwd=root).out
        )

        status = json.loads(run_nerve("status", "--json", cwd=root).out)
        limit = status["rateLimits"]["ticketing"]
        assert limit["rate"] == "1/1h"
        assert limit["inWindow"] == 1  # the second call's grant lies an hour ahead
        assert limit["waiting"] == 1
        assert 7100 < limit["nextFreeInS"] <= 7200  # a third call would wait for both
        shown = run_nerve("status", cwd=root).out
        assert "rate limits: ticketing 1/1h (1 in window, 1 waiting, next free in 7" in shown
        # The compute waits an hour: not a test's to wait for.
        os.kill(int((root / "nerve.pid").read_text()), signal.SIGKILL)
