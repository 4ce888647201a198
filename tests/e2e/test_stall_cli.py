"""A stalled run as a user sees it: `nerve status` names it, `nerve workflow list` marks it, and
`nerve explain run` shows the stall in its history."""

from __future__ import annotations

import json

import pytest

from ..cli.conftest import run_nerve
from ..daemon.conftest import SLEEPER, build_workspace
from .conftest import scratch_folder, wait_for

pytestmark = pytest.mark.slow


def test_status_list_and_explain_show_a_stalled_run() -> None:
    with scratch_folder() as folder:
        config = "workflows:\n  slow: {stall_after: 500ms}\n"
        root = build_workspace(folder / "ws", config, {}, workflows={"slow": SLEEPER})
        assert run_nerve("start", cwd=root).code == 0
        triggered = run_nerve("workflow", "trigger", "slow", "--prompt", "30", "--json", cwd=root)
        assert triggered.code == 0, triggered.err
        run_id = json.loads(triggered.out)["runId"]

        def stalled() -> bool:
            status = run_nerve("status", "--json", cwd=root)
            return run_id in json.loads(status.out)["stalledRuns"]

        wait_for(stalled)
        status = run_nerve("status", cwd=root)
        assert f"stalled runs: {run_id} (silent " in status.out
        listed = run_nerve("workflow", "list", cwd=root)
        [line] = [line for line in listed.out.splitlines() if run_id in line]
        assert "started (stalled)" in line
        explained = run_nerve("explain", "run", run_id, cwd=root)
        assert "stalled: no message for " in explained.out
        assert "(on_stall: none)" in explained.out
        assert run_nerve("stop", cwd=root).code == 0
