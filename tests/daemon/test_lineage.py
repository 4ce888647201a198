"""Lineage: every trigger has an id carried through its compute to the rows its outcome writes
(`cause`), a signal row names the trigger whose compute produced it, a launch row names the run
it created, and the run records the trigger that launched it. The chain `nerve explain` walks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, RunStatus
from nerve_store import LogStore

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

CONFIG = """
senses:
  src: {}
  dst: {group: other}
reflexes:
  - sense: dst
    on: [src]
workflows:
  w: {}
"""
SRC = "def compute(ctx):\n    ctx.log('info', 'sampling')\n    return {'v': 1}\n"
DST = "def compute(ctx):\n    return {'workflow': 'w|3|0', 'from': ctx.signal.id}\n"


async def test_a_run_can_be_walked_back_to_the_trigger_that_started_the_chain(
    ws: Callable[..., Path],
) -> None:
    root = ws(CONFIG, {"src": SRC, "dst": DST}, workflows={"w": SLEEPER})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("src")
        await wait_until(lambda: recorder.of(LogType.WORKFLOW_LAUNCH, "dst"))
        [launch] = recorder.of(LogType.WORKFLOW_LAUNCH, "dst")
        run_id = launch.payload["run_id"]
        await wait_until(lambda: "completed" in recorder.statuses(run_id))
    with LogStore.open_readonly(root / "data/logs.db") as store:
        run = store.run(run_id)
        rows = store.logs()
    assert run is not None
    assert run.status is RunStatus.COMPLETED
    assert (run.origin, run.cause) == ("dst", launch.cause)
    by_type = {(row.type, row.source): row for row in rows}
    launch_row = by_type[(LogType.WORKFLOW_LAUNCH, "dst")]
    assert launch_row.cause == run.cause
    assert launch_row.payload["run_id"] == run_id
    assert launch_row.payload["status"] == "started"
    signal_row = by_type[(LogType.SIGNAL, "src")]
    assert launch_row.payload["signal"] == signal_row.ref_id  # the signal that triggered dst
    assert signal_row.cause is not None
    assert signal_row.cause.startswith("m-")  # a trigger id names its kind: manual
    assert launch_row.cause is not None
    assert launch_row.cause.startswith("s-")  # dst computed for a signal
    assert signal_row.cause != launch_row.cause  # two computes, two triggers
    assert (signal_row.parent, launch_row.parent) == (None, signal_row.ref_id)  # lineage upward
    assert launch_row.ref_id == run_id  # the launch row is found from its run
    log_row = by_type[(LogType.SENSE_LOG, "src")]
    assert log_row.cause == signal_row.cause  # ctx.log rows carry their compute's trigger
