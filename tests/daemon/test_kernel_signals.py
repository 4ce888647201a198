"""The kernel's own events as signals: a reflex schedules a sense on `@worker.crash` after a real
worker kill and on `@run.failed` after a real failed run; a sense failing on every
`@compute.error` fails once per original error, not forever."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, RunStatus, WorkerState

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio

PAGER = "def compute(ctx):\n    return {'heard': ctx.signal.source, 'about': ctx.signal.payload}\n"


async def test_a_killed_worker_schedules_the_sense_listening_to_worker_crash(
    ws: Callable[..., Path],
) -> None:
    config = """
    senses:
      victim: {group: fragile}
      pager: {}
    reflexes:
      - sense: pager
        on: ["@worker.crash"]
    """
    root = ws(config, {"victim": "def compute(ctx):\n    return 1\n", "pager": PAGER})
    async with running(root) as (kernel, recorder):
        group = kernel.groups["fragile"]
        await wait_until(lambda: group.state is WorkerState.RUNNING)
        assert group.worker is not None
        killed = group.worker.pid
        os.kill(killed, signal.SIGKILL)
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "pager"))
    [heard] = recorder.of(LogType.SIGNAL, "pager")
    assert heard.payload["heard"] == "@worker.crash"
    assert heard.payload["about"]["group"] == "fragile"
    assert (heard.payload["about"]["pid"], heard.payload["about"]["reason"]) == (killed, "crash")
    assert heard.cause is not None
    assert heard.cause.startswith("k-")  # the compute of a kernel signal
    [crash] = recorder.of(LogType.SIGNAL, "@worker.crash")  # recorded as a signal row too
    assert heard.parent == crash.ref_id


FAILING = """
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "breaks" if thread[-1].role == START else END

def breaks(ctx):
    raise RuntimeError("the role broke")

definition = WorkflowDefinition(moderator=moderator, roles={"breaks": breaks})
"""


async def test_a_failed_run_schedules_the_sense_listening_to_run_failed(
    ws: Callable[..., Path],
) -> None:
    config = """
    senses:
      pager: {}
    reflexes:
      - sense: pager
        on: ["@run.failed"]
    workflows:
      fragile: {}
    """
    root = ws(config, {"pager": PAGER}, workflows={"fragile": FAILING})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("fragile")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "pager"))
    assert recorder.statuses(run_id)[-1] == str(RunStatus.FAILED)
    [heard] = recorder.of(LogType.SIGNAL, "pager")
    about = heard.payload["about"]
    assert (heard.payload["heard"], about["run"], about["source"]) == (
        "@run.failed",
        run_id,
        "fragile",
    )
    assert "the role broke" in about["reason"]


async def test_a_sense_failing_on_every_compute_error_stops_after_one_round(
    ws: Callable[..., Path],
) -> None:
    config = """
    senses:
      first: {}
      spiral: {}
    reflexes:
      - sense: spiral
        on: ["@compute.error"]
    """
    raises = "def compute(ctx):\n    raise ValueError('no')\n"
    root = ws(config, {"first": raises, "spiral": raises})
    async with running(root) as (kernel, recorder):
        signals = kernel.kernel_signals
        assert signals is not None
        for round_ in (1, 2):
            kernel.trigger_sense("first")
            # spiral's own error is about a compute for a kernel signal: not signalled again
            await wait_until(lambda n=round_: signals.suppressed == n)
        assert len(recorder.of(LogType.COMPUTE_ERROR, "spiral")) == 2  # once per first's error
        assert len(recorder.of(LogType.SIGNAL, "@compute.error")) == 2  # first's errors only
        assert signals.published == 2


async def test_a_run_launched_for_a_kernel_signal_is_not_signalled_again_when_it_fails(
    ws: Callable[..., Path],
) -> None:
    """`first` fails; `launcher` runs for that `@compute.error` and launches a run that fails:
    that failure is not a `@run.failed` (its run came from a kernel signal), so `pager` stays
    quiet and no chain of failures feeds itself."""
    config = """
    senses:
      first: {}
      launcher: {}
      pager: {}
    reflexes:
      - sense: launcher
        on: ["@compute.error"]
      - sense: pager
        on: ["@run.failed"]
    workflows:
      fragile: {}
    """
    code = {
        "first": "def compute(ctx):\n    raise ValueError('no')\n",
        "launcher": "def compute(ctx):\n    return {'workflow': 'fragile|2|again'}\n",
        "pager": PAGER,
    }
    root = ws(config, code, workflows={"fragile": FAILING})
    async with running(root) as (kernel, recorder):
        signals = kernel.kernel_signals
        assert signals is not None
        kernel.trigger_sense("first")
        await wait_until(lambda: signals.suppressed == 1)  # the run's failure, not signalled
        [launch] = recorder.of(LogType.WORKFLOW_LAUNCH, "launcher")
        assert recorder.statuses(launch.payload["run_id"])[-1] == str(RunStatus.FAILED)
        assert launch.cause is not None
        assert launch.cause.startswith("k-")
    assert recorder.of(LogType.SIGNAL, "pager") == []
    assert recorder.of(LogType.SIGNAL, "@run.failed") == []


async def test_a_worker_that_dies_while_starting_is_a_worker_crash(
    ws: Callable[..., Path],
) -> None:
    config = """
    senses:
      pager: {}
    reflexes:
      - sense: pager
        on: ["@worker.crash"]
    workflows:
      doomed: {}
    """
    root = ws(config, {"pager": PAGER}, workflows={"doomed": "import os\nos._exit(1)\n"})
    async with running(root) as (_, recorder):
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "pager"))
    heard = recorder.of(LogType.SIGNAL, "pager")[0].payload
    assert heard["heard"] == "@worker.crash"
    assert (heard["about"]["workflow"], heard["about"]["reason"]) == ("doomed", "start_failed")
