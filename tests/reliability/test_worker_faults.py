"""Workers die and hang; the kernel replaces them and loses nothing that was queued."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from nerve_core import LogType, RunStatus, WorkerState
from nerve_daemon.senses.group import OutcomeKind
from nerve_daemon.supervise.policy import GroupPolicy
from nerve_store import LogStore

from ..daemon.conftest import TWO_STEPS, running, wait_until
from ..scale import scaled
from .conftest import Figure, ms

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

# Respawn at once and never call it a crash loop: these tests are about what survives a kill
# (the crash loop has its own test in test_crash_loops.py).
KEEP_RESPAWNING = GroupPolicy(crash_limit=10_000, backoff_first_s=0.0, stop_timeout_s=5.0)
SENSES = 4
BUSY = """
import time

def compute(ctx):
    print("begin {name}", flush=True)
    time.sleep(0.03)
    return 1
"""


def alive_and_running(kernel_group: object) -> bool:
    worker = getattr(kernel_group, "worker", None)
    state = getattr(kernel_group, "state", None)
    return worker is not None and worker.alive and state is WorkerState.RUNNING


async def test_a_sense_worker_killed_50_times_mid_compute_loses_nothing_queued(
    ws: Callable[..., Path], figure: Figure
) -> None:
    names = [f"w{i}" for i in range(SENSES)]
    root = ws(
        "senses:\n" + "".join(f"  {name}: {{group: g}}\n" for name in names),
        {name: BUSY.format(name=name) for name in names},
    )
    kills, respawns = scaled(10, 50), []
    async with running(root, KEEP_RESPAWNING) as (kernel, recorder):
        group = kernel.groups["g"]
        for _ in range(kills):
            await wait_until(lambda: alive_and_running(group))
            printed, computed = len(recorder.output), len(recorder.computes)
            for name in names:
                kernel.trigger_sense(name)
            await wait_until(
                lambda n=printed: any("begin" in line for _, line in recorder.output[n:])
            )
            assert group.worker is not None
            os.kill(group.worker.pid, signal.SIGKILL)  # while a compute runs, three queued
            killed_at = time.monotonic()
            await wait_until(lambda n=computed: len(recorder.computes) == n + SENSES)
            kinds = [outcome.kind for _, _, outcome in recorder.computes[computed:]]
            assert sorted(kinds) == sorted([OutcomeKind.CRASH] + [OutcomeKind.OK] * 3), kinds
            first_after = next(
                at
                for at, (_, _, outcome) in zip(
                    recorder.compute_times[computed:], recorder.computes[computed:], strict=True
                )
                if outcome.kind is OutcomeKind.OK and at > killed_at
            )
            respawns.append(first_after - killed_at)
    exits = [row for row in recorder.of(LogType.WORKER_EXIT) if row.payload["reason"] == "crash"]
    assert len(exits) == kills
    assert len(recorder.of(LogType.COMPUTE_CRASH)) == kills
    assert recorder.of(LogType.WORKER_CRASH_LOOP) == []
    ran = sum(1 for _, _, outcome in recorder.computes if outcome.kind is OutcomeKind.OK)
    # "Respawned at once": ~0.1 s measured; a backoff or a lost wake-up would take seconds.
    assert max(respawns) < 2.0, ms(respawns)
    figure(
        "sense worker SIGKILLed mid-compute",
        f"{kills}/{kills} respawned; {ran}/{kills * (SENSES - 1)} queued computes ran, 0 lost; "
        f"kill → next compute done (each sleeps 30 ms) {ms(respawns)}",
    )


STEPS = TWO_STEPS.format(seconds=0.15)


def mid_role(output: list[tuple[str, str]]) -> set[str]:
    """The runs whose role "second" has begun, by what it printed."""
    return {line.split()[-1] for _, line in output if line.startswith("second begins")}


def statuses(root: Path, run_ids: list[str]) -> dict[str, RunStatus]:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        runs = {run_id: store.run(run_id) for run_id in run_ids}
    return {run_id: run.status for run_id, run in runs.items() if run is not None}


async def test_a_workflow_worker_killed_20_times_mid_role_completes_every_run(
    ws: Callable[..., Path], figure: Figure
) -> None:
    root = ws(
        "workflows:\n  steps: {concurrency: 2, overflow: queue}\n", {}, workflows={"steps": STEPS}
    )
    kills, per_kill, all_runs = scaled(6, 20), 2, []
    async with running(root, KEEP_RESPAWNING) as (kernel, recorder):
        runner = kernel.workflow_runners["steps"]
        for _ in range(kills):
            await wait_until(lambda: alive_and_running(runner))
            printed = len(recorder.output)
            runs = [(await kernel.trigger_workflow("steps"))[0] for _ in range(per_kill)]
            all_runs += runs
            await wait_until(
                lambda n=printed, runs=runs: mid_role(recorder.output[n:]) == set(runs)
            )
            assert runner.worker is not None
            os.kill(runner.worker.pid, signal.SIGKILL)  # both runs are mid-role
            await wait_until(
                lambda runs=runs: set(statuses(root, runs).values()) == {RunStatus.COMPLETED},
                timeout=30,
            )
    for run_id in all_runs:
        assert recorder.statuses(run_id) == ["queued", "started", "crashed", "started", "completed"]
    with LogStore.open_readonly(root / "data/logs.db") as store:
        threads = {run_id: [m.content for m in store.messages(run_id)] for run_id in all_runs}
    assert all(thread == ["", "one", "two"] for thread in threads.values())  # "first" ran once
    figure(
        "workflow worker SIGKILLed mid-role",
        f"{kills} kills, {len(all_runs)}/{len(all_runs)} runs resumed and completed, "
        "no completed role run twice",
    )


async def test_a_stopped_worker_is_a_hang_its_compute_times_out_and_it_is_replaced(
    ws: Callable[..., Path], figure: Figure
) -> None:
    root = ws(
        "senses:\n  tick: {timeout: 1s}\nreflexes:\n  - sense: tick\n    interval: 100ms\n",
        {"tick": "def compute(ctx):\n    return 1\n"},
    )
    async with running(root) as (kernel, recorder):
        group = kernel.groups["default"]
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "tick"))
        assert group.worker is not None
        stopped = group.worker.pid
        os.kill(stopped, signal.SIGSTOP)
        frozen_at = time.monotonic()
        await wait_until(lambda: recorder.of(LogType.COMPUTE_TIMEOUT, "tick"))
        timed_out = time.monotonic() - frozen_at
        before = len(recorder.of(LogType.SIGNAL, "tick"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "tick")) > before)
        replaced = time.monotonic() - frozen_at
        assert group.worker is not None
        assert group.worker.pid != stopped
    with pytest.raises(psutil.NoSuchProcess):
        psutil.Process(stopped).status()  # killed and reaped, not left stopped
    [exit_row] = [r for r in recorder.of(LogType.WORKER_EXIT) if r.payload["pid"] == stopped]
    assert exit_row.payload["reason"] == "timeout"
    assert 1.0 <= timed_out < 3.0  # the 1 s timeout, not early and not seconds late
    assert replaced - timed_out < 2.0  # then replaced at once
    figure(
        "SIGSTOPped sense worker (timeout 1 s)",
        f"compute timed out after {timed_out:.2f} s; computes again after {replaced:.2f} s",
    )
