"""Overlap modes of workflows: `overflow: restart` cancels the oldest running run for a new one,
a full queue gives up the oldest, the newest or the new run as `evict` says, and a newcomer never
passes the runs queued before it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from nerve_core import LogType, Overflow, RunStatus, WorkflowConfig
from nerve_daemon.workflows.admission import Admission, Verdict
from nerve_store import LogStore

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

TERMINAL = {RunStatus.COMPLETED, RunStatus.CANCELLED, RunStatus.DROPPED, RunStatus.FAILED}


def statuses(root: Path, ids: list[str]) -> list[RunStatus | None]:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        return [None if (run := store.run(run_id)) is None else run.status for run_id in ids]


async def test_overflow_restart_cancels_the_oldest_running_run_and_starts_the_new_one(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "workflows:\n  slow:\n    concurrency: 2\n    overflow: restart\n",
        {},
        workflows={"slow": SLEEPER},
    )
    async with running(root) as (kernel, recorder):
        first, _ = await kernel.trigger_workflow("slow", "30")
        second, _ = await kernel.trigger_workflow("slow", "30")
        third, status = await kernel.trigger_workflow("slow", "0.2")
        assert status is RunStatus.STARTED
        assert statuses(root, [first]) == [RunStatus.CANCELLED]  # the oldest gave its slot
        await wait_until(lambda: statuses(root, [third]) == [RunStatus.COMPLETED])
        assert statuses(root, [second]) == [RunStatus.STARTED]  # untouched
        fourth, status = await kernel.trigger_workflow("slow", "30")
        assert status is RunStatus.STARTED  # a free slot: nothing cancelled
        assert statuses(root, [second]) == [RunStatus.STARTED]
        fifth, _ = await kernel.trigger_workflow("slow", "0.2")
        assert statuses(root, [second, fourth]) == [RunStatus.CANCELLED, RunStatus.STARTED]
        await wait_until(lambda: statuses(root, [fifth]) == [RunStatus.COMPLETED])
        assert kernel.workflow_runners["slow"].running == 1  # the fourth
    cancelled = {
        row.ref_id: row.payload["reason"]
        for row in recorder.of(LogType.WORKFLOW_STATUS)
        if row.payload["status"] == "cancelled"
    }
    assert cancelled == {
        first: f"cancelled: overflow restart gave its slot to run {third}",
        second: f"cancelled: overflow restart gave its slot to run {fifth}",
    }


@pytest.mark.parametrize(
    ("evict", "finals", "reason"),
    [
        (
            "oldest",
            ["completed", "dropped", "completed", "completed"],
            "evicted from a full queue (max_queue 2) by run {3}",
        ),
        (
            "newest",
            ["completed", "completed", "dropped", "completed"],
            "evicted from a full queue (max_queue 2) by run {3}",
        ),
        (
            "refuse",
            ["completed", "completed", "completed", "dropped"],
            "the queue is full (max_queue 2, evict: refuse)",
        ),
    ],
)
async def test_a_full_queue_gives_up_the_run_evict_names(
    ws: Callable[..., Path], evict: str, finals: list[str], reason: str
) -> None:
    """One run started and two queued (max_queue 2); a fourth arrives."""
    config = f"workflows:\n  slow:\n    overflow: queue\n    max_queue: 2\n    evict: {evict}\n"
    root = ws(config, {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, recorder):
        ids = [(await kernel.trigger_workflow("slow", "0.3"))[0] for _ in range(4)]
        await wait_until(lambda: all(s in TERMINAL for s in statuses(root, ids)), timeout=30)
    assert [str(status) for status in statuses(root, ids)] == finals
    dropped = [
        row.payload["reason"]
        for row in recorder.of(LogType.WORKFLOW_STATUS)
        if row.payload["status"] == "dropped"
    ]
    assert dropped == [reason.format(*ids)]


@dataclass(frozen=True)
class _Run:
    run_id: str


def test_a_slot_freed_while_runs_are_queued_goes_to_the_oldest_queued_not_a_newcomer() -> None:
    # Between a run's end and the claim of the next queued run, a launch sees a free slot: it
    # must queue behind the runs waiting already, in order.
    config = WorkflowConfig(concurrency=1, overflow=Overflow.QUEUE, max_queue=5)
    admission: Admission[_Run] = Admission(config)
    assert admission.admit(_Run("a")).verdict is Verdict.START
    assert admission.admit(_Run("b")).verdict is Verdict.QUEUE
    admission.finish("a")
    assert admission.admit(_Run("c")).verdict is Verdict.QUEUE
    assert admission.claim() == _Run("b")
    assert admission.claim() is None  # b holds the one slot
    admission.finish("b")
    assert admission.claim() == _Run("c")
