"""Stalled and overlong runs: `stall_after` marks a started run silent that long (a row, the
`@run.stalled` signal, health), once per stall; `on_stall: cancel` ends it, `restart` cancels its
thread and resumes it from its messages (killing a worker that does not let go); `timeout` fails a
run that has gone on too long."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, RunStatus
from nerve_daemon.supervise.supervisor import GroupPolicy
from nerve_store import LogStore

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

# "first" answers at once; "hangs" sleeps 20 s on its first try (a marker file beside the
# workflow says it began), and answers at once when tried again. `{define}` is `def` or
# `async def`: an async role that sleeps blocks its worker's loop.
HANGS_ONCE = """
import time
from pathlib import Path
from nerve_core.workflow import END, START, WorkflowDefinition

MARK = Path(__file__).with_name("began")

def moderator(thread):
    return {{START: "first", "first": "hangs"}}.get(thread[-1].role, END)

def first(ctx):
    return "one"

{define} hangs(ctx):
    tries = int(MARK.read_text()) + 1 if MARK.exists() else 1
    MARK.write_text(str(tries))
    if tries == 1:
        time.sleep(20)
    return f"answered on try {{tries}}"

definition = WorkflowDefinition(moderator=moderator, roles={{"first": first, "hangs": hangs}})
"""

PAGER = "def compute(ctx):\n    return {'heard': ctx.signal.source, 'about': ctx.signal.payload}\n"


def run_of(root: Path, run_id: str) -> tuple[RunStatus, int, str | None]:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        run = store.run(run_id)
        assert run is not None
        return run.status, run.rounds, run.error


def thread_of(root: Path, run_id: str) -> list[tuple[int, str, object]]:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        return [(m.round, m.role, m.content) for m in store.messages(run_id)]


async def test_a_stalled_run_is_restarted_from_its_messages_and_signals_once(
    ws: Callable[..., Path],
) -> None:
    config = """
    senses:
      pager: {}
    reflexes:
      - sense: pager
        on: ["@run.stalled"]
    workflows:
      w: {stall_after: 1s, on_stall: restart}
    """
    root = ws(config, {"pager": PAGER}, workflows={"w": HANGS_ONCE.format(define="def")})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("w", "go")
        await wait_until(lambda: run_of(root, run_id)[0] is RunStatus.COMPLETED, timeout=30)
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "pager"))
    # "first" ran once (its message kept), "hangs" twice: the restart resumed after round 1.
    assert thread_of(root, run_id)[1:] == [(1, "first", "one"), (2, "hangs", "answered on try 2")]
    [stall] = recorder.of(LogType.WORKFLOW_STALL, "w")
    assert stall.ref_id == run_id
    assert stall.payload["onStall"] == "restart"
    assert 1.0 <= stall.payload["silentS"] <= 1.0 + 1.0  # seen within a check (¼ s) or so
    statuses = [
        (row.payload["status"], row.payload.get("reason"))
        for row in recorder.of(LogType.WORKFLOW_STATUS)
        if row.ref_id == run_id
    ]
    assert statuses[-3:] == [
        ("crashed", "stalled: its thread was cancelled; it resumes from its messages"),
        ("started", "resumed"),
        ("completed", None),
    ]
    [heard] = recorder.of(LogType.SIGNAL, "pager")
    assert heard.payload["heard"] == "@run.stalled"
    assert heard.payload["about"]["run"] == run_id
    assert heard.payload["about"]["source"] == "w"


async def test_a_worker_that_does_not_let_go_of_a_stalled_thread_is_killed_and_its_run_resumes(
    ws: Callable[..., Path],
) -> None:
    # An async role that sleeps blocks its worker's loop: the cancel cannot reach it.
    config = "workflows:\n  w: {stall_after: 500ms, on_stall: restart}\n"
    root = ws(config, {}, workflows={"w": HANGS_ONCE.format(define="async def")})
    policy = GroupPolicy(backoff_first_s=0.05, backoff_max_s=0.2, stop_timeout_s=1.0)
    async with running(root, policy) as (kernel, recorder):
        worker = kernel.workflow_runners["w"].worker
        assert worker is not None
        first_pid = worker.pid
        run_id, _ = await kernel.trigger_workflow("w", "go")
        await wait_until(lambda: run_of(root, run_id)[0] is RunStatus.COMPLETED, timeout=30)
        assert kernel.workflow_runners["w"].worker is not None
        assert kernel.workflow_runners["w"].worker.pid != first_pid  # killed and respawned
    assert thread_of(root, run_id)[-1] == (2, "hangs", "answered on try 2")
    reasons = [
        row.payload.get("reason")
        for row in recorder.of(LogType.WORKFLOW_STATUS)
        if row.ref_id == run_id and row.payload["status"] == "crashed"
    ]
    assert reasons == ["the worker exited with code -9"]


async def test_a_stalled_run_is_cancelled_with_on_stall_cancel(ws: Callable[..., Path]) -> None:
    config = "workflows:\n  w: {stall_after: 1s, on_stall: cancel}\n"
    root = ws(config, {}, workflows={"w": HANGS_ONCE.format(define="def")})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("w", "go")
        await wait_until(lambda: run_of(root, run_id)[0] is RunStatus.CANCELLED, timeout=30)
        assert kernel.workflow_runners["w"].running == 0  # its slot is free
    [end] = [
        row
        for row in recorder.of(LogType.WORKFLOW_STATUS)
        if row.ref_id == run_id and row.payload["status"] == "cancelled"
    ]
    assert end.payload["reason"] == "stalled: no message for 1s"


async def test_on_stall_none_tells_once_shows_it_in_health_and_lets_the_run_finish(
    ws: Callable[..., Path],
) -> None:
    config = "workflows:\n  slow: {stall_after: 500ms}\n"
    root = ws(config, {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("slow", "3")
        await wait_until(lambda: run_id in kernel.health().stalled_runs)
        assert kernel.health().stalled_runs[run_id] >= 0.5
        await wait_until(lambda: run_of(root, run_id)[0] is RunStatus.COMPLETED, timeout=30)
        assert kernel.health().stalled_runs == {}
        # A stalled run cancelled (it never wrote again) is no longer shown as stalled.
        other, _ = await kernel.trigger_workflow("slow", "30")
        await wait_until(lambda: other in kernel.health().stalled_runs)
        assert await kernel.cancel_workflow(other) is RunStatus.CANCELLED
        assert kernel.health().stalled_runs == {}
    # Told once for each stall, though the watch looked many times while they slept.
    assert [row.ref_id for row in recorder.of(LogType.WORKFLOW_STALL)] == [run_id, other]


async def test_a_run_past_its_timeout_fails_within_a_bound(ws: Callable[..., Path]) -> None:
    config = "workflows:\n  slow: {timeout: 1s, concurrency: 1, overflow: queue}\n"
    root = ws(config, {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("slow", "30")
        queued, status = await kernel.trigger_workflow("slow", "0")
        assert status is RunStatus.QUEUED
        await wait_until(lambda: run_of(root, run_id)[0] is RunStatus.FAILED, timeout=30)
        await wait_until(lambda: run_of(root, queued)[0] is RunStatus.COMPLETED)  # its slot
    rows = [row for row in recorder.of(LogType.WORKFLOW_STATUS) if row.ref_id == run_id]
    started = next(row.ts for row in rows if row.payload["status"] == "started")
    failed = next(row for row in rows if row.payload["status"] == "failed")
    assert failed.payload["reason"] == "the run passed its timeout (1s)"
    assert 1000 <= failed.ts - started <= 1000 + 1000  # checked every ¼ s, on a noisy machine


# Eight turns of 300 ms each: 2.4 s in all, never more than 300 ms without a message.
TICKER = """
import time
from nerve_core.workflow import END, WorkflowDefinition

def moderator(thread):
    return "tick" if len(thread) <= 8 else END

def tick(ctx):
    time.sleep(0.3)
    return len(ctx.thread)

definition = WorkflowDefinition(moderator=moderator, roles={"tick": tick})
"""


async def test_each_committed_message_keeps_a_run_from_stalling(ws: Callable[..., Path]) -> None:
    config = "workflows:\n  ticks: {stall_after: 1s, on_stall: cancel}\n"
    root = ws(config, {}, workflows={"ticks": TICKER})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("ticks", "go")
        await wait_until(lambda: run_of(root, run_id)[0] is RunStatus.COMPLETED, timeout=30)
    assert run_of(root, run_id)[1] == 8
    assert recorder.of(LogType.WORKFLOW_STALL) == []
