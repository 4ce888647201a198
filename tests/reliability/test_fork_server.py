"""The fork server is supervised: killed, it is replaced, the workers it forked are replaced with
it, and sensing goes on in the same daemon."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import psutil
import pytest

from ..cli.conftest import run_nerve
from ..scale import scaled
from .conftest import ECHO, Figure, daemon_workspace, query, wait_for

pytestmark = pytest.mark.slow

CONFIG = """
senses:
  tick: {}
reflexes:
  - sense: tick
    interval: 100ms
workflows:
  echo: {}
"""


def workers(root: Path) -> dict[str, dict[str, object]]:
    status = run_nerve("status", "--json", cwd=root)
    assert status.code == 0, status.err
    return {worker["name"]: worker for worker in json.loads(status.out)["workers"]}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def signals(root: Path) -> int:
    [(count,)] = query(root, "SELECT count(*) FROM logs WHERE type = 'signal'")
    return int(count)


@pytest.mark.parametrize("kills", [scaled(2, 3)])
def test_a_killed_fork_server_is_replaced_with_its_workers_and_sensing_goes_on(
    kills: int, figure: Figure
) -> None:
    with daemon_workspace(
        CONFIG, {"tick": "def compute(ctx):\n    return 1\n"}, {"echo": ECHO}
    ) as root:
        assert run_nerve("start", cwd=root).code == 0
        daemon_pid = int((root / "nerve.pid").read_text())
        for _ in range(kills):
            before = workers(root)
            server = int(str(before["fork-server"]["pid"]))
            old = [int(str(before[name]["pid"])) for name in ("default", "echo")]
            os.kill(server, signal.SIGKILL)
            wait_for(
                lambda s=server: (
                    (now := workers(root))["fork-server"]["pid"] not in (None, s)
                    and all(
                        now[name]["state"] == "RUNNING" and now[name]["pid"]
                        for name in ("default", "echo")
                    )
                ),
                timeout=30,
            )
            after = workers(root)
            assert all(int(str(after[name]["pid"])) not in old for name in ("default", "echo"))
            wait_for(lambda o=old: all(gone(pid) for pid in o), timeout=10)  # no orphan left
            counted = signals(root)
            wait_for(lambda c=counted: signals(root) >= c + 5, timeout=30)  # the new worker senses
        trigger = run_nerve("workflow", "trigger", "echo", "--prompt", "hi", "--json", cwd=root)
        assert trigger.code == 0, trigger.err
        run_id = json.loads(trigger.out)["runId"]
        wait_for(
            lambda: (
                query(root, "SELECT status FROM workflow_runs WHERE run_id = ?", run_id)
                == [("completed",)]
            ),
            timeout=30,
        )
        assert int((root / "nerve.pid").read_text()) == daemon_pid
        assert workers(root)["fork-server"]["restarts"] == kills
        exits = query(
            root,
            "SELECT count(*) FROM logs WHERE type = 'worker.exit'"
            " AND json_extract(payload, '$.worker') = 'fork-server'",
        )
        assert exits == [(kills,)]
    figure(
        f"fork server SIGKILLed {kills}x under a sense @100 ms",
        "replaced each time with its workers, old workers gone, sensing and a workflow run went "
        "on in the same daemon",
    )
