"""Workflow runs through the embedded kernel: launch, limits, ends, cancel, crashes, drain."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from nerve_core import START, LogType, RunStatus, WorkerState
from nerve_core.errors import StoreError
from nerve_daemon.supervise.policy import GroupPolicy
from nerve_store import LogStore

from .conftest import SLEEPER, TWO_STEPS, running, wait_until

pytestmark = pytest.mark.anyio

TWO_ROLES = """
import time
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return {START: "planner", "planner": "executor"}.get(thread[-1].role, END)

def planner(ctx):
    return {"plan": f"handle: {ctx.prompt}", "run": ctx.run_id}

async def executor(ctx):
    return {"done": ctx.thread[-1].content["plan"], "rounds_seen": len(ctx.thread)}

definition = WorkflowDefinition(moderator=moderator, roles={"planner": planner, "executor": executor})
"""


def final_status(root: Path, run_id: str) -> RunStatus | None:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        run = store.run(run_id)
    return None if run is None else run.status


async def test_a_sense_directive_launches_a_run_that_completes_with_its_thread_persisted(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  disk: {}\nworkflows:\n  cleanup: {}\n",
        {
            "disk": "def compute(ctx):\n    return {'workflow': 'cleanup|5|Disk | nearly full', 'path': '/'}\n"
        },
        workflows={"cleanup": TWO_ROLES},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("disk")
        await wait_until(
            lambda: any(
                r.payload.get("status") == "completed" for r in recorder.of(LogType.WORKFLOW_STATUS)
            )
        )
    [status_row] = [
        r for r in recorder.of(LogType.WORKFLOW_STATUS) if r.payload["status"] == "completed"
    ]
    run_id = status_row.ref_id
    assert run_id is not None
    assert recorder.statuses(run_id) == ["queued", "started", "completed"]
    with LogStore.open_readonly(root / "data/logs.db") as store:
        thread = store.messages(run_id)
        run = store.run(run_id)
    assert [(m.round, m.role) for m in thread] == [(0, START), (1, "planner"), (2, "executor")]
    assert thread[0].content == "Disk | nearly full"
    assert thread[1].content == {"plan": "handle: Disk | nearly full", "run": run_id}
    assert thread[2].content == {"done": "handle: Disk | nearly full", "rounds_seen": 2}
    assert run is not None
    assert (run.origin, run.max_rounds, run.rounds, run.payload) == ("disk", 5, 2, {"path": "/"})


async def test_overflow_drop_records_runs_beyond_concurrency_as_dropped(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "workflows:\n  slow:\n    concurrency: 2\n    overflow: drop\n",
        {},
        workflows={"slow": SLEEPER},
    )
    async with running(root) as (kernel, recorder):
        results = [await kernel.trigger_workflow("slow", "0.5") for _ in range(5)]
        statuses = [status for _, status in results]
        assert statuses == [
            RunStatus.STARTED,
            RunStatus.STARTED,
            RunStatus.DROPPED,
            RunStatus.DROPPED,
            RunStatus.DROPPED,
        ]
        await wait_until(
            lambda: all(
                final_status(root, run_id) is not RunStatus.STARTED for run_id, _ in results
            )
        )
    assert [final_status(root, run_id) for run_id, _ in results] == [RunStatus.COMPLETED] * 2 + [
        RunStatus.DROPPED
    ] * 3
    dropped = [r for r in recorder.of(LogType.WORKFLOW_STATUS) if r.payload["status"] == "dropped"]
    assert [r.payload["reason"] for r in dropped] == [
        "concurrency 2 reached (overflow: drop)"
    ] * 3  # each says why


async def test_overflow_queue_runs_in_order_and_a_full_queue_evicts_its_oldest(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "workflows:\n  slow:\n    concurrency: 1\n    overflow: queue\n    max_queue: 2\n",
        {},
        workflows={"slow": SLEEPER},
    )
    async with running(root) as (kernel, recorder):
        results = [await kernel.trigger_workflow("slow", "0.3") for _ in range(5)]
        ids = [run_id for run_id, _ in results]
        assert [status for _, status in results] == [RunStatus.STARTED] + [RunStatus.QUEUED] * 4
        await wait_until(
            lambda: all(
                final_status(root, run_id) in (RunStatus.COMPLETED, RunStatus.DROPPED)
                for run_id in ids
            ),
            timeout=30,
        )
    finals = [final_status(root, run_id) for run_id in ids]
    assert finals == [
        RunStatus.COMPLETED,
        RunStatus.DROPPED,
        RunStatus.DROPPED,
        RunStatus.COMPLETED,
        RunStatus.COMPLETED,
    ]
    evicted = [r for r in recorder.of(LogType.WORKFLOW_STATUS) if r.payload["status"] == "dropped"]
    assert [r.ref_id for r in evicted] == [ids[1], ids[2]]  # oldest queued first
    assert [r.payload["reason"] for r in evicted] == [  # each names the run that pushed it out
        f"evicted from a full queue (max_queue 2) by run {ids[3]}",
        f"evicted from a full queue (max_queue 2) by run {ids[4]}",
    ]
    started_order = [
        r.ref_id for r in recorder.of(LogType.WORKFLOW_STATUS) if r.payload["status"] == "started"
    ]
    assert started_order == [ids[0], ids[3], ids[4]]


LOOPER = """
from nerve_core.workflow import END, WorkflowDefinition

def moderator(thread):
    return "again"

def again(ctx):
    return len(ctx.thread)

definition = WorkflowDefinition(moderator=moderator, roles={"again": again})
"""

BROKEN_ROLES = """
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    if thread[0].content == "unknown":
        return "nobody"
    if thread[0].content == "nan":
        return "nan" if thread[-1].role == START else END
    return "boom" if thread[-1].role == START else END

def boom(ctx):
    raise RuntimeError("the role broke")

def nan(ctx):
    return {"ratio": float("nan")}  # JSON cannot hold it: never stored as a silent null

definition = WorkflowDefinition(moderator=moderator, roles={"boom": boom, "nan": nan})
"""


async def test_a_run_fails_after_max_rounds_turns_without_end(ws: Callable[..., Path]) -> None:
    root = ws(
        "max_rounds: 4\nworkflows:\n  looper: {concurrency: 2}\n", {}, workflows={"looper": LOOPER}
    )
    async with running(root) as (kernel, _):
        run_default, _ = await kernel.trigger_workflow("looper")
        run_three, _ = await kernel.trigger_workflow("looper", max_rounds=3)
        await wait_until(
            lambda: (
                final_status(root, run_default) is RunStatus.FAILED
                and final_status(root, run_three) is RunStatus.FAILED
            )
        )
    with LogStore.open_readonly(root / "data/logs.db") as store:
        assert len(store.messages(run_default)) == 1 + 4
        assert len(store.messages(run_three)) == 1 + 3
        run = store.run(run_three)
    assert run is not None
    assert run.error == "3 role turns passed without END"


async def test_a_raising_role_and_an_unknown_role_fail_the_run_with_the_reason(
    ws: Callable[..., Path],
) -> None:
    root = ws("workflows:\n  broken:\n    concurrency: 3\n", {}, workflows={"broken": BROKEN_ROLES})
    async with running(root) as (kernel, _):
        raising, _ = await kernel.trigger_workflow("broken", "raise")
        unknown, _ = await kernel.trigger_workflow("broken", "unknown")
        nan, _ = await kernel.trigger_workflow("broken", "nan")
        await wait_until(
            lambda: all(
                final_status(root, run) in (RunStatus.FAILED, RunStatus.COMPLETED)
                for run in (raising, unknown, nan)
            )
        )
    with LogStore.open_readonly(root / "data/logs.db") as store:
        raised, named, unjson = store.run(raising), store.run(unknown), store.run(nan)
        nan_thread = store.messages(nan)
    assert unjson is not None
    assert unjson.status is RunStatus.FAILED
    assert unjson.error is not None
    assert unjson.error.startswith(
        "PayloadError: role 'nan' returned NaN or infinity, which JSON cannot hold"
    )
    assert [m.role for m in nan_thread] == [START]  # nothing of it was stored
    assert raised is not None
    assert raised.error is not None
    assert raised.error.startswith("RuntimeError: the role broke")
    assert "workflows/broken/workflow.py" in raised.error  # the traceback
    assert named is not None
    assert named.error == "the moderator named an unknown role 'nobody' (roles: boom, nan)"


async def test_a_queued_and_a_started_run_can_be_cancelled(ws: Callable[..., Path]) -> None:
    root = ws("workflows:\n  slow:\n    overflow: queue\n", {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, _):
        started, _ = await kernel.trigger_workflow("slow", "30")
        queued, status = await kernel.trigger_workflow("slow", "0.1")
        assert status is RunStatus.QUEUED
        assert await kernel.cancel_workflow(queued) is RunStatus.CANCELLED
        assert await kernel.cancel_workflow(started) is RunStatus.CANCELLED
        after, status = await kernel.trigger_workflow("slow", "0.1")
        assert status is RunStatus.STARTED  # the slot was freed
        await wait_until(lambda: final_status(root, after) is RunStatus.COMPLETED)
        from nerve_daemon.workflows.runs import UnknownRun

        with pytest.raises(UnknownRun, match="already cancelled"):
            await kernel.cancel_workflow(started)
        with pytest.raises(UnknownRun, match="no workflow run"):
            await kernel.cancel_workflow("nope")
    assert final_status(root, started) is RunStatus.CANCELLED
    assert final_status(root, queued) is RunStatus.CANCELLED


async def test_a_worker_killed_mid_role_is_respawned_and_the_run_resumes_and_completes(
    ws: Callable[..., Path],
) -> None:
    root = ws("workflows:\n  steps: {}\n", {}, workflows={"steps": TWO_STEPS.format(seconds=1.0)})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("steps")
        await wait_until(
            lambda: any(
                r.type == LogType.WORKFLOW_MESSAGE
                and r.ref_id == run_id
                and r.payload["role"] == "first"
                for r in recorder.rows
            )
        )
        await wait_until(lambda: ("workflow:steps", f"second begins {run_id}") in recorder.output)
        runner = kernel.workflow_runners["steps"]
        os.kill(runner.worker.pid, signal.SIGKILL)  # type: ignore[union-attr]
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED)
    assert recorder.statuses(run_id) == ["queued", "started", "crashed", "started", "completed"]
    with LogStore.open_readonly(root / "data/logs.db") as store:
        assert [m.content for m in store.messages(run_id)] == [
            "",
            "one",
            "two",
        ]  # "first" did not run again


async def test_a_workflow_whose_worker_dies_on_every_start_stops_respawning(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  fine: {}\nworkflows:\n  doomed: {}\n",
        {"fine": "def compute(ctx):\n    return 1\n"},
        workflows={"doomed": "import os\nos._exit(1)\n"},
    )
    async with running(root) as (kernel, recorder):
        runner = kernel.workflow_runners["doomed"]
        await wait_until(lambda: runner.state is WorkerState.FATAL)
        run_id, status = await kernel.trigger_workflow("doomed")
        assert status is RunStatus.DROPPED
        assert final_status(root, run_id) is RunStatus.DROPPED
        assert {w.name: w.state for w in kernel.health().workers} == {
            "fork-server": "RUNNING",
            "default": "RUNNING",
            "doomed": "FATAL",
        }
        kernel.trigger_sense("fine")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "fine"))
        # Fixed, it leaves FATAL (as a reload of its code would ask) and runs again.
        (root / "workflows/doomed/workflow.py").write_text(SLEEPER)
        runner.drain_and_respawn(timeout=5.0)
        await wait_until(lambda: runner.state is WorkerState.RUNNING)
        fixed, _ = await kernel.trigger_workflow("doomed", "0")
        await wait_until(lambda: final_status(root, fixed) is RunStatus.COMPLETED)
    assert recorder.of(LogType.WORKER_CRASH_LOOP)[0].payload["workflow"] == "doomed"


async def test_drain_interrupts_runs_that_outlive_the_timeout_and_new_runs_use_a_fresh_worker(
    ws: Callable[..., Path],
) -> None:
    root = ws("workflows:\n  slow:\n    concurrency: 2\n", {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, _):
        runner = kernel.workflow_runners["slow"]
        old_pid = runner.worker.pid  # type: ignore[union-attr]
        long_run, _ = await kernel.trigger_workflow("slow", "30")
        short_run, _ = await kernel.trigger_workflow("slow", "0.2")
        runner.drain_and_respawn(timeout=1.0)
        await wait_until(
            lambda: (
                runner.worker is not None
                and runner.worker.pid != old_pid
                and runner.state is WorkerState.RUNNING
            )
        )
        await wait_until(lambda: final_status(root, long_run) is RunStatus.INTERRUPTED)
        after, status = await kernel.trigger_workflow("slow", "0.1")
        assert status is RunStatus.STARTED
        await wait_until(lambda: final_status(root, after) is RunStatus.COMPLETED)
    assert final_status(root, short_run) is RunStatus.COMPLETED
    assert final_status(root, long_run) is RunStatus.INTERRUPTED


async def test_roles_get_peer_databases_read_only_and_log_rows(ws: Callable[..., Path]) -> None:
    reader = """
from sqlalchemy import text
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "look" if thread[-1].role == START else END

def look(ctx):
    with ctx.peer("notes").connect() as db:
        rows = list(db.execute(text("SELECT body FROM notes")).scalars())
    ctx.log("info", "looked", count=len(rows))
    return rows

definition = WorkflowDefinition(moderator=moderator, roles={"look": look})
"""
    root = ws(
        "senses:\n  notes: {}\nworkflows:\n  reader: {}\n",
        {
            "notes": "from sqlalchemy import text\ndef compute(ctx):\n    with ctx.db.begin() as db:\n        db.execute(text(\"INSERT INTO notes VALUES ('hi')\"))\n    return None\n"
        },
        {"senses/notes/migrations/001.sql": "CREATE TABLE notes (body TEXT);\n"},
        workflows={"reader": reader},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("notes")
        await wait_until(lambda: recorder.computes_of("notes"))
        run_id, _ = await kernel.trigger_workflow("reader")
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED)
        await wait_until(lambda: recorder.of(LogType.WORKFLOW_LOG, "reader"))
    with LogStore.open_readonly(root / "data/logs.db") as store:
        assert store.messages(run_id)[1].content == ["hi"]
    [logged] = recorder.of(LogType.WORKFLOW_LOG, "reader")
    assert (logged.ref_id, logged.payload["fields"]) == (run_id, {"count": 1})


async def test_a_launch_of_an_undeclared_workflow_from_the_api_is_refused(
    ws: Callable[..., Path],
) -> None:
    from nerve_daemon.workflows.runs import UnknownWorkflow

    root = ws("workflows:\n  slow: {}\n", {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, _):
        with pytest.raises(UnknownWorkflow, match='no workflow "ghost"'):
            await kernel.trigger_workflow("ghost")


async def test_a_run_triggered_while_its_worker_respawns_waits_for_the_new_worker_not_dropped(
    ws: Callable[..., Path],
) -> None:
    """overflow: drop drops only runs beyond concurrency, never one that found a free slot while
    the worker was being replaced."""
    root = ws("workflows:\n  sleeper: {overflow: drop}\n", {}, workflows={"sleeper": SLEEPER})
    slow_respawn = GroupPolicy(backoff_first_s=2.0, backoff_max_s=2.0, stop_timeout_s=5.0)
    async with running(root, slow_respawn) as (kernel, _recorder):
        runner = kernel.workflow_runners["sleeper"]
        killed = None
        for _ in range(2):  # the second exit within the window waits backoff_first_s
            await wait_until(  # a new worker, up (not the killed one, still RUNNING for a moment)
                lambda k=killed: (
                    runner.state is WorkerState.RUNNING
                    and runner.worker is not None
                    and runner.worker is not k
                    and runner.worker.alive
                )
            )
            worker = killed = runner.worker
            assert worker is not None
            os.kill(worker.pid, signal.SIGKILL)
            await wait_until(lambda w=worker: not w.alive)
        await wait_until(lambda: runner.state is WorkerState.BACKOFF)
        run_id, status = await kernel.trigger_workflow("sleeper", "0")
        assert status is RunStatus.QUEUED
        second_id, second = await kernel.trigger_workflow("sleeper", "0")
        assert second is RunStatus.DROPPED  # the one slot is the first run's
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED)
    assert final_status(root, second_id) is RunStatus.DROPPED


SLOW_TO_LOAD = """
import time
from nerve_core.workflow import END, START, WorkflowDefinition

print("loading {version}", flush=True)
time.sleep({load_s})

def moderator(thread):
    return "report" if thread[-1].role == START else END

definition = WorkflowDefinition(moderator=moderator, roles={{"report": lambda ctx: "{version}"}})
"""


async def test_a_second_code_change_while_the_fresh_worker_loads_replaces_that_worker_too(
    ws: Callable[..., Path],
) -> None:
    code = SLOW_TO_LOAD.format(version="1", load_s=0)
    root = ws("workflows:\n  w: {}\n", {}, workflows={"w": code})
    module = root / "workflows/w/workflow.py"
    async with running(root) as (kernel, recorder):
        runner = kernel.workflow_runners["w"]
        module.write_text(SLOW_TO_LOAD.format(version="2", load_s=1.5))
        runner.drain_and_respawn(timeout=5.0)
        await wait_until(lambda: ("workflow:w", "loading 2") in recorder.output)
        module.write_text(SLOW_TO_LOAD.format(version="3", load_s=0))  # while 2 is loading
        runner.drain_and_respawn(timeout=5.0)
        await wait_until(lambda: ("workflow:w", "loading 3") in recorder.output, timeout=30)
        await wait_until(lambda: runner.state is WorkerState.RUNNING)
        run_id, _ = await kernel.trigger_workflow("w")
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED)
    with LogStore.open_readonly(root / "data/logs.db") as store:
        assert [m.content for m in store.messages(run_id)][-1] == "3"


GARBLED = """
import os
import stat
import time
from pathlib import Path
from typing import Any
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "garble" if thread[-1].role == START else END

def garble(ctx):
    marker = Path(ctx.prompt)
    if not marker.exists():  # the first time: garbage on every socket the worker holds
        marker.write_text("done")
        for fd in range(3, 256):
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.write(fd, b"this is not the protocol\\n")
            except OSError:
                pass
        time.sleep(30)
    return "fine"

definition = WorkflowDefinition(moderator=moderator, roles={"garble": garble})
"""


async def test_a_workflow_worker_speaking_garbage_is_killed_and_its_run_resumes(
    ws: Callable[..., Path], tmp_path: Path
) -> None:
    root = ws("workflows:\n  g: {}\n", {}, workflows={"g": GARBLED})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("g", str(tmp_path / "garbled-once"))
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED, timeout=30)
    assert recorder.statuses(run_id) == ["queued", "started", "crashed", "started", "completed"]
    exits = [
        r.payload for r in recorder.of(LogType.WORKER_EXIT) if r.payload.get("workflow") == "g"
    ]
    assert exits[0]["reason"] == "crash"


async def test_the_next_round_waits_until_the_previous_message_has_committed(
    ws: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit of round 1's message is held on an event inside its transaction: the second
    role must not begin until it is released."""
    import threading

    from nerve_store import AppendMessage

    holding, release = threading.Event(), threading.Event()
    apply = LogStore.apply

    def held(self: LogStore, ops: Any, connection: Any = None) -> None:
        apply(self, ops, connection)
        if any(isinstance(op, AppendMessage) and op.round == 1 for op in ops):
            holding.set()
            release.wait(30)  # inside the writer's transaction: not committed yet

    monkeypatch.setattr(LogStore, "apply", held)
    root = ws("workflows:\n  steps: {}\n", {}, workflows={"steps": TWO_STEPS.format(seconds=0)})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("steps")
        await anyio.to_thread.run_sync(holding.wait, 30)
        await anyio.sleep(0.5)  # time enough for a premature next round to show
        began = [line for _, line in recorder.output if line.startswith("second begins")]
        release.set()
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED)
    assert began == []  # nothing of round 2 while round 1's message was uncommitted
    assert any(line == f"second begins {run_id}" for _, line in recorder.output)


async def test_queued_runs_are_queued_again_at_the_next_start_and_run_in_order(
    ws: Callable[..., Path],
) -> None:
    config = "workflows:\n  slow: {concurrency: 1, overflow: queue}\n"
    root = ws(config, {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, recorder):
        long_run, started = await kernel.trigger_workflow("slow", "1.5")
        first, one = await kernel.trigger_workflow("slow", "0")
        second, two = await kernel.trigger_workflow("slow", "0")
        assert (started, one, two) == (RunStatus.STARTED, RunStatus.QUEUED, RunStatus.QUEUED)
    # stopped with one run started and two queued: a new kernel takes them all over
    assert final_status(root, first) is RunStatus.QUEUED
    async with running(root) as (kernel, recorder):
        await wait_until(
            lambda: all(
                final_status(root, r) is RunStatus.COMPLETED for r in (long_run, first, second)
            )
        )
    assert recorder.statuses(first) == ["started", "completed"]
    assert recorder.statuses(second) == ["started", "completed"]
    with LogStore.open_readonly(root / "data/logs.db") as store:
        runs = {run_id: store.run(run_id) for run_id in (long_run, first, second)}
    starts = [runs[r].started_at for r in (long_run, first, second)]  # type: ignore[union-attr]
    assert starts == sorted(starts)  # in creation order, behind the resumed run


async def test_a_run_resumed_at_the_next_start_holds_its_slot(ws: Callable[..., Path]) -> None:
    """Concurrency 1: the run a stopped kernel left started is resumed by the next one and holds
    the one slot, so a run launched meanwhile is queued behind it, not started beside it."""
    config = "workflows:\n  slow: {concurrency: 1, overflow: queue}\n"
    root = ws(config, {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, recorder):
        long_run, started = await kernel.trigger_workflow("slow", "2")
        assert started is RunStatus.STARTED
    assert final_status(root, long_run) is RunStatus.STARTED  # left for the next kernel
    async with running(root) as (kernel, recorder):
        assert recorder.statuses(long_run) == ["crashed", "started"]  # resumed
        newer, status = await kernel.trigger_workflow("slow", "0")
        assert status is RunStatus.QUEUED
        await wait_until(lambda: final_status(root, newer) is RunStatus.COMPLETED)
    assert recorder.statuses(newer) == ["queued", "started", "completed"]
    assert recorder.statuses(long_run) == ["crashed", "started", "completed"]


# An async role: cancelling its run cancels it in the worker, mid-sleep.
PATIENT = """
import anyio
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "patient" if thread[-1].role == START else END

async def patient(ctx):
    print("patient begins", ctx.run_id, flush=True)
    await anyio.sleep(float(ctx.prompt))
    print("patient went on", ctx.run_id, flush=True)
    return "done"

definition = WorkflowDefinition(moderator=moderator, roles={"patient": patient})
"""


async def test_cancelling_a_started_run_stops_its_role_in_the_worker(
    ws: Callable[..., Path],
) -> None:
    root = ws("workflows:\n  w: {concurrency: 2}\n", {}, workflows={"w": PATIENT})
    async with running(root) as (kernel, recorder):
        cancelled, _ = await kernel.trigger_workflow("w", "1")
        await wait_until(lambda: ("workflow:w", f"patient begins {cancelled}") in recorder.output)
        assert await kernel.cancel_workflow(cancelled) is RunStatus.CANCELLED
        later, _ = await kernel.trigger_workflow("w", "1.5")  # ends after the cancelled would
        await wait_until(lambda: final_status(root, later) is RunStatus.COMPLETED)
    lines = [line for name, line in recorder.output if name == "workflow:w"]
    assert f"patient went on {later}" in lines
    assert f"patient went on {cancelled}" not in lines  # its role was stopped, not left running


async def test_cancelling_the_started_run_lets_the_queued_one_start(
    ws: Callable[..., Path],
) -> None:
    config = "workflows:\n  slow: {concurrency: 1, overflow: queue}\n"
    root = ws(config, {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, recorder):
        long_run, _ = await kernel.trigger_workflow("slow", "30")
        waiting, status = await kernel.trigger_workflow("slow", "0")
        assert status is RunStatus.QUEUED
        assert await kernel.cancel_workflow(long_run) is RunStatus.CANCELLED
        await wait_until(lambda: final_status(root, waiting) is RunStatus.COMPLETED)
    assert recorder.statuses(waiting) == ["queued", "started", "completed"]


async def test_a_run_is_started_and_given_its_start_message_in_one_transaction(
    ws: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whenever nerve dies, a `started` run has its START message: both are one commit."""
    from nerve_store import AppendMessage, Together, TransitionRun

    root = ws("workflows:\n  w: {}\n", {}, workflows={"w": SLEEPER})
    transactions: list[list[object]] = []
    original = LogStore.apply

    def noted(self: LogStore, ops: list[object], connection: object = None) -> None:
        flat: list[object] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Together) else [op])
        transactions.append(flat)
        original(self, ops, connection)  # type: ignore[arg-type]

    monkeypatch.setattr(LogStore, "apply", noted)
    async with running(root) as (kernel, _):
        run_id, _ = await kernel.trigger_workflow("w", "0")
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED)
    [together] = [
        ops
        for ops in transactions
        if any(
            isinstance(op, TransitionRun) and op.run_id == run_id and op.status is RunStatus.STARTED
            for op in ops
        )
    ]
    assert any(
        isinstance(op, AppendMessage) and op.run_id == run_id and op.round == 0 for op in together
    )


async def test_runs_of_a_workflow_gone_from_nerve_yaml_end_at_the_next_start_with_the_reason(
    ws: Callable[..., Path],
) -> None:
    """A kernel stops with one run started and one queued; nerve.yaml then loses the workflow:
    the next kernel ends the queued one `dropped` and the started one `failed`, saying why."""
    config = "workflows:\n  gone: {concurrency: 1, overflow: queue}\n  kept: {}\n"
    root = ws(config, {}, workflows={"gone": SLEEPER, "kept": SLEEPER})
    async with running(root) as (kernel, _):
        started, one = await kernel.trigger_workflow("gone", "30")
        queued, two = await kernel.trigger_workflow("gone", "0")
        assert (one, two) == (RunStatus.STARTED, RunStatus.QUEUED)
    (root / "nerve.yaml").write_text("workflows:\n  kept: {}\n")
    async with running(root):
        await wait_until(lambda: final_status(root, queued) is RunStatus.DROPPED)
        await wait_until(lambda: final_status(root, started) is RunStatus.FAILED)
    with LogStore.open_readonly(root / "data/logs.db") as store:
        reasons = {
            row.ref_id: row.payload["reason"]
            for row in store.logs(type=LogType.WORKFLOW_STATUS, limit=100)
            if row.payload["status"] in ("dropped", "failed")
        }
    assert reasons == {
        queued: "its workflow is no longer declared in nerve.yaml",
        started: "its workflow is no longer declared in nerve.yaml",
    }


async def test_a_message_that_cannot_be_committed_fails_its_run_and_no_next_round_starts(
    ws: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit of role `first`'s message fails (injected in the store): the run fails
    saying so, and the worker, never acknowledged, never begins `second`."""
    from nerve_store import log_store

    real = log_store._append_message

    def failing(connection: Any, op: Any) -> None:
        if op.role == "first":
            raise StoreError("injected: this message cannot be stored")
        real(connection, op)

    monkeypatch.setattr(log_store, "_append_message", failing)
    root = ws("workflows:\n  steps: {}\n", {}, workflows={"steps": TWO_STEPS.format(seconds=0)})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("steps", "go")
        await wait_until(lambda: final_status(root, run_id) is RunStatus.FAILED)
    with LogStore.open_readonly(root / "data/logs.db") as store:
        run, thread = store.run(run_id), store.messages(run_id)
    assert run is not None
    assert run.error == "a message could not be committed: injected: this message cannot be stored"
    assert [m.role for m in thread] == [START]
    assert not any("second begins" in line for _, line in recorder.output)


MEETING = """
import time
from pathlib import Path

from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "meet" if thread[-1].role == START else END

def meet(ctx):  # a `def` role that blocks (a call elsewhere): here, until every run is in it
    folder = Path(ctx.prompt)
    (folder / ctx.run_id).touch()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len(list(folder.iterdir())) >= 45:
            return "met"
        time.sleep(0.05)
    return f"alone with {len(list(folder.iterdir()))}"

definition = WorkflowDefinition(moderator=moderator, roles={"meet": meet})
"""


async def test_blocking_roles_of_more_runs_than_a_thread_pool_holds_all_run_at_once(
    ws: Callable[..., Path], tmp_path: Path
) -> None:
    # `concurrency` is the cap on runs at once, not the 40 threads of anyio's default pool:
    # 45 runs whose `def` roles each wait for all the others all get there.
    root = ws("workflows:\n  many: {concurrency: 45}\n", {}, workflows={"many": MEETING})
    folder = tmp_path / "met"
    folder.mkdir()
    async with running(root) as (kernel, _):
        ids = [(await kernel.trigger_workflow("many", str(folder)))[0] for _ in range(45)]

        def ended() -> bool:
            with LogStore.open_readonly(root / "data/logs.db") as store:
                return all(store.run(run_id).status.terminal for run_id in ids)  # type: ignore[union-attr]

        await wait_until(ended, timeout=60)
    with LogStore.open_readonly(root / "data/logs.db") as store:
        answers = {store.messages(run_id)[-1].content for run_id in ids}
    assert answers == {"met"}


async def test_an_idle_workflow_stops_its_worker_and_the_next_run_starts_one(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "workflows:\n  quick: {idle_after: 1s}\n  kept: {idle_after: null}\n",
        {},
        workflows={"quick": TWO_ROLES, "kept": TWO_ROLES},
    )
    async with running(root) as (kernel, recorder):
        quick, kept = kernel.workflow_runners["quick"], kernel.workflow_runners["kept"]
        first = quick.worker
        assert first is not None
        assert kept.worker is not None
        await wait_until(lambda: quick.state is WorkerState.IDLE)
        await wait_until(lambda: not first.alive)  # its process is gone, not merely unused
        [view] = [w for w in kernel.health().workers if w.name == "quick"]
        assert (view.state, view.pid) == ("IDLE", None)

        run_id, status = await kernel.trigger_workflow("quick", "again")
        assert status is RunStatus.STARTED  # as with a worker up: the run waited for it
        assert quick.worker is not None
        assert quick.worker is not first
        await wait_until(lambda: final_status(root, run_id) is RunStatus.COMPLETED)
        await wait_until(lambda: quick.state is WorkerState.IDLE)

        idle_exits = [
            row.payload
            for row in recorder.of(LogType.WORKER_EXIT)
            if row.payload.get("workflow") == "quick"
        ]
        assert [exit["reason"] for exit in idle_exits] == ["idle", "idle"]
        assert idle_exits[0]["detail"] == "no run for 1s"
        assert quick.restarts == 0  # stopping for want of work is no restart
        assert kept.state is WorkerState.RUNNING  # `null`: it stays
        assert kept.worker.alive

        # Its code changed while idle: a worker loads it at once (its errors would show now,
        # not at the next run), then goes idle again.
        before = quick.worker
        (root / "workflows/quick/workflow.py").write_text(TWO_ROLES + "\n# changed\n")
        await kernel.files_changed({Path("workflows/quick/workflow.py")})
        await wait_until(lambda: quick.worker is not before and quick.state is WorkerState.RUNNING)
        await wait_until(lambda: quick.state is WorkerState.IDLE)
        starts = [
            r for r in recorder.of(LogType.WORKER_START) if r.payload.get("workflow") == "quick"
        ]
        assert len(starts) == 3  # at nerve's start, for the run, for the new code
