"""WorkflowRunner: one workflow's supervised worker and its runs.

The runner owns its worker process, its admission (concurrency slots and queue) and its runs in
flight. A launch is admitted before any await, then recorded (committed) before it is answered.
Every role message is committed before the worker may begin the next round. When the worker dies,
its runs are recorded `crashed`, the worker is respawned and each run resumes from its persisted
messages (`started` again); 5 deaths within 60 s stop the respawning and end its runs `failed`
(until the workflow's code changes). A code change drains the worker: its runs may finish within
the drain timeout, then those still going are recorded `interrupted`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from nerve_core import (
    START,
    CancelThread,
    LimitRequest,
    LogType,
    MessageAck,
    Progress,
    RunLog,
    RunStatus,
    StartThread,
    ThreadEnd,
    ThreadMessage,
    WorkerReady,
    WorkerState,
    WorkflowConfig,
    WorkflowMessage,
)
from nerve_core.errors import ProtocolError
from nerve_store import (
    AppendLogs,
    AppendMessage,
    CreateRun,
    LogRow,
    RunRecord,
    Together,
    TransitionRun,
    WriteOp,
    now_ms,
)

from ..containment import contained
from ..lifetimes import until_first
from ..supervise.cgroups import GroupCgroup
from ..supervise.progress import ProgressReport
from ..supervise.supervisor import ExitReason, Supervised, Supervisor, shut_down
from ..supervise.worker_pool import WorkerExited, WorkerProcess
from .admission import Admission, Verdict
from .keys import LaunchKeys
from .runs import Run, RunnerParts, committed_rows, new_run_id
from .stalls import StallWatch

log = logging.getLogger("nerve")


class WorkflowRunner(Supervised):
    def __init__(self, name: str, config: WorkflowConfig, parts: RunnerParts) -> None:
        self.name = name
        self._observe = parts.observe
        self.config = config
        self._root = parts.root
        self._pool = parts.pool
        self._writer = parts.writer
        self._reader = parts.reader
        self._record = parts.record
        self._policy = parts.policy
        self._limits = parts.limits
        self._admission: Admission[Run] = Admission(config)
        self.keys = LaunchKeys(name, parts.reader, self._launch_keyed)
        self.stalls = StallWatch(name, config, self, parts.record, parts.policy.stop_timeout_s)
        self._active: dict[str, Run] = {}  # sent to a worker
        self.progress: dict[str, ProgressReport] = {}  # run → what its role last said
        self._waiting: list[Run] = []  # admitted, their slot held, waiting for a worker
        self._closed: str | None = None  # why no new run is admitted (the workflow was removed)
        self._drain_timeout = 30.0
        self._drains = 0
        self._to_resume: list[Run] = []
        self._group: TaskGroup | None = None
        self._readers = 0
        self._supervisor = Supervisor(self, parts.pool, parts.record, parts.policy)
        self._up = anyio.Event()  # set while a worker serves (cleared as an idle one stops)
        self._stirred = anyio.Event()  # set, then made anew, whenever its runs change

    @property
    def active_runs(self) -> list[str]:
        """The runs a worker has now, oldest first."""
        return list(self._active)

    @property
    def queued_runs(self) -> list[str]:
        return [run.run_id for run in self._admission.queue]

    @property
    def running(self) -> int:
        """Runs holding a slot: started, waiting for a worker, or crashed and to be resumed."""
        return self._admission.running

    @property
    def queued(self) -> int:
        return len(self._admission.queue)

    # -- launching and cancelling ----------------------------------------------------------------

    async def launch(
        self,
        prompt: str,
        max_rounds: int,
        origin: str,
        payload: Any = None,
        cause: str | None = None,
        *,
        run_id: str | None = None,
        key: str | None = None,
    ) -> tuple[str, RunStatus]:
        """Record a new run and start, queue or drop it; return its id and status. Admission is
        decided before the first await, so simultaneous launches never share a slot. `key`, an
        idempotency key, is committed with the run (see keys.py)."""
        run = Run(run_id or new_run_id(), prompt, max_rounds)
        create = CreateRun(
            run.run_id, self.name, prompt, max_rounds, origin, payload, cause=cause, key=key
        )
        closed = self._closed
        if self.state is WorkerState.FATAL:
            closed = "the workflow's worker is FATAL (crash loop): nothing can run it"
        admitted = self._admission.admit(run, closed=closed)
        if admitted.verdict is Verdict.DROP:  # recorded as dropped from the start
            await self._write(replace(create, status=RunStatus.DROPPED, reason=admitted.reason))
            return run.run_id, RunStatus.DROPPED
        if admitted.verdict is Verdict.START and self.state is WorkerState.IDLE:
            await self._woken()  # answered `started`, as with a worker up, once it is up
        at_once = (
            admitted.verdict is Verdict.START
            and admitted.evicted is None
            and admitted.replaced is None
            and self._can_start()
        )
        # Started at once: created and started in one commit (the ack waits for one, not two).
        started = self._started(run) if at_once else None
        try:
            await self._write(create if started is None else Together((create, *started[0])))
        except BaseException:  # never created: give back the slot or queue place it was given
            self._admission.finish(run.run_id)
            self._admission.queue.remove(run.run_id)
            raise
        if started is not None:
            await self._send_start(run, [started[1]])
            return run.run_id, RunStatus.STARTED
        if admitted.evicted is not None:
            max_queue = self._admission.config.max_queue
            reason = f"evicted from a full queue (max_queue {max_queue}) by run {run.run_id}"
            await self._end(admitted.evicted.run_id, RunStatus.DROPPED, reason)
        if admitted.replaced is not None:  # overflow: restart
            reason = f"cancelled: overflow restart gave its slot to run {run.run_id}"
            await self._stop_run(admitted.replaced, reason)
        if admitted.verdict in (Verdict.START, Verdict.RESTART):
            if not self._can_start():  # its worker respawns: the run waits for the new one
                self._waiting.append(run)
                return run.run_id, RunStatus.QUEUED
            await self._start(run)
            return run.run_id, RunStatus.STARTED
        await self._fill_slots()
        return run.run_id, RunStatus.STARTED if run.run_id in self._active else RunStatus.QUEUED

    async def _launch_keyed(
        self,
        run_id: str,
        key: str,
        prompt: str,
        max_rounds: int,
        origin: str,
        payload: Any,
        cause: str | None,
    ) -> tuple[str, RunStatus]:
        return await self.launch(prompt, max_rounds, origin, payload, cause, run_id=run_id, key=key)

    async def cancel(self, run_id: str) -> bool:
        """Cancel a queued or started run of this workflow; False if it is neither."""
        if self._admission.queue.remove(run_id) is not None:
            await self._end(run_id, RunStatus.CANCELLED, "cancelled")
        elif not await self._stop_run(run_id, "cancelled"):
            return False
        await self._fill_slots()
        return True

    def worker_of(self, run_id: str) -> WorkerProcess | None:
        """The worker a run in flight is on (None if it is not on one now)."""
        run = self._active.get(run_id)
        return None if run is None else run.worker

    async def end_run(self, run_id: str, reason: str, *, failed: bool = False) -> None:
        """End a run holding a slot `cancelled` (or `failed`) and give its slot to the queue."""
        if await self._stop_run(run_id, reason, failed=failed):
            await self._fill_slots()

    async def _stop_run(self, run_id: str, reason: str, *, failed: bool = False) -> bool:
        """Cancel a run holding a slot (started, waiting for its worker, or crashed and to be
        resumed), telling its worker to stop its thread; False if no such run."""
        held = [run for run in (*self._waiting, *self._to_resume) if run.run_id == run_id]
        for waiting in held:
            (self._waiting if waiting in self._waiting else self._to_resume).remove(waiting)
        active = self._active.pop(run_id, None)
        if active is None and not held:
            return False
        await self._end(run_id, RunStatus.FAILED if failed else RunStatus.CANCELLED, reason)
        if active is not None and active.worker is not None and active.worker.alive:
            with contextlib.suppress(WorkerExited):
                await active.worker.send(CancelThread(run_id))
        return True

    async def recover(self, runs: list[RunRecord]) -> None:
        """Take over runs a previous kernel left unfinished (oldest first)."""
        for record in runs:
            run = Run(record.run_id, record.prompt, record.max_rounds)
            if record.status is RunStatus.QUEUED:
                self._admission.queue.enqueue(run)
                continue
            self._admission.hold(run.run_id)
            if record.status is RunStatus.STARTED:
                await self._write(
                    TransitionRun(
                        run.run_id, RunStatus.CRASHED, reason="the daemon stopped while it ran"
                    )
                )
            self._to_resume.append(run)
        await self._resume_crashed()
        await self._fill_slots()

    # -- supervision -----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self.stalls.watch)
            task_status.started()
            await self._supervisor.run()
            # Replaced workers finish draining; the readers end at their workers' end of stream
            # (cancelling them while a stream closes can leave a stale reader behind, in anyio).
            with anyio.move_on_after(self._drain_timeout + self._policy.stop_timeout_s):
                while self._drains:
                    await anyio.sleep(0.01)
            with anyio.move_on_after(self._policy.stop_timeout_s):
                while self._readers:
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()

    def blames_work(self) -> bool:
        return False  # every crash of a workflow worker counts toward its crash loop

    def cgroup(self) -> GroupCgroup | None:
        return None  # memory limits are a sense group's

    def spawn_args(self) -> tuple[str, str, dict[str, Any]]:
        return "workflow", f"workflow:{self.name}", {"root": str(self._root), "workflow": self.name}

    def identity(self) -> dict[str, Any]:
        return {"workflow": self.name}

    def start_details(self) -> dict[str, Any]:
        return {}

    def wants_worker(self) -> bool:
        return self._closed is None  # a retired workflow's last worker drains; none follows

    async def has_work(self) -> None:
        while not self._busy():
            self._stirred = anyio.Event()
            await self._stirred.wait()

    def _busy(self) -> bool:
        """Whether it has runs: holding a slot (started, waiting, to resume) or queued."""
        return bool(self.running or self.queued or self._active or self._drains)

    def _stir(self) -> None:
        """Its runs changed: wake whoever waits for work (an idle worker) or idleness."""
        self._stirred.set()

    async def _until_idle(self) -> None:
        """Return once it has had no run for `idle_after` (never, when that is null)."""
        while True:
            after = self.config.idle_after
            stirred = self._stirred = anyio.Event()
            if after is None or self._busy():
                await stirred.wait()
                continue
            with anyio.move_on_after(after):
                await stirred.wait()
            if not stirred.is_set():
                return

    async def _woken(self) -> None:
        """Start the idle worker for a run and wait until it is up (or cannot come up)."""
        self._stir()  # `has_work` sees the run's slot, held since its admission
        with anyio.move_on_after(self._policy.ready_timeout_s):
            while not self._up.is_set() and self.state in (WorkerState.IDLE, WorkerState.STARTING):
                with anyio.move_on_after(0.05):  # a start that fails leaves these states
                    await self._up.wait()

    async def serve(
        self, worker: WorkerProcess, ready: WorkerReady
    ) -> tuple[ExitReason, str | None]:
        for error in ready.errors.values():
            log.error("workflow %s: %s", self.name, error)
        assert self._group is not None
        self._group.start_soon(self._read, worker)
        self._up.set()
        await self._resume_crashed()
        await self._start_waiting()
        await self._fill_slots()
        supervisor = self._supervisor
        while True:
            await until_first(
                worker.wait, supervisor.replaced.wait, supervisor.stopping.wait, self._until_idle
            )
            if not worker.alive or supervisor.stopping.is_set() or supervisor.replaced.is_set():
                break
            if not self._busy():  # no run for `idle_after` (checked again: one may have come)
                self._up = anyio.Event()  # no run is sent to it from now on
                await shut_down(worker, self._policy.stop_timeout_s)
                return ExitReason.IDLE, f"no run for {self.config.idle_after:g}s"
        if supervisor.stopping.is_set():
            await shut_down(worker, self._policy.stop_timeout_s)
            return ExitReason.STOPPED, None
        if supervisor.replaced.is_set() and worker.alive:
            self._group.start_soon(self._drain, worker, self._drain_timeout)
            return ExitReason.RELOAD, None
        return ExitReason.CRASH, None

    async def lost(self, worker: WorkerProcess, reason: ExitReason, code: int) -> None:
        """Its runs are recorded `crashed` (their messages committed first) and resume on the
        next worker; on a stop they stay `started` and resume at the next start (an idle
        worker had none)."""
        if reason in (ExitReason.STOPPED, ExitReason.IDLE):
            return
        await self._writer.write_async(AppendLogs([]))  # a barrier: its messages are committed
        for run in [run for run in self._active.values() if run.worker is worker]:
            del self._active[run.run_id]
            self.progress.pop(run.run_id, None)  # it starts again from its last message
            self.stalls.restarting.discard(run.run_id)
            await self._write(
                TransitionRun(
                    run.run_id, RunStatus.CRASHED, reason=f"the worker exited with code {code}"
                )
            )
            self._to_resume.append(run)

    async def fatal(self, reason: str) -> None:
        for run in [*self._to_resume, *self._waiting]:
            await self._end(run.run_id, RunStatus.FAILED, reason)
        self._to_resume.clear()
        self._waiting.clear()
        while (queued := self._admission.queue.claim()) is not None:
            await self._end(queued.run_id, RunStatus.DROPPED, reason)

    def drain_and_respawn(self, timeout: float) -> None:
        """The workflow's code changed: new runs go to a fresh worker, and the current one
        finishes its runs within `timeout`, then those still going are recorded `interrupted`.
        A change while the fresh worker is starting replaces that one too: the code it loaded
        may be older than the change. A FATAL workflow gets a fresh try."""
        self._drain_timeout = timeout
        self._supervisor.replace()

    async def _drain(self, old: WorkerProcess, timeout: float) -> None:
        self._drains += 1
        try:
            await self._drain_worker(old, timeout)
        finally:
            self._drains -= 1

    async def _drain_worker(self, old: WorkerProcess, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            while any(run.worker is old for run in self._active.values()):
                await anyio.sleep(0.01)
        for run in [run for run in self._active.values() if run.worker is old]:
            del self._active[run.run_id]
            await self._end(
                run.run_id,
                RunStatus.INTERRUPTED,
                f"still running {timeout:g}s after its workflow was reloaded",
            )
        await shut_down(old, self._policy.stop_timeout_s)
        await self._fill_slots()

    async def stop(self) -> None:
        """Stop the worker; runs in flight stay `started` and resume at the next start."""
        self._supervisor.stop()

    async def use(self, config: WorkflowConfig) -> None:
        """New limits: a larger concurrency starts queued runs now; a smaller one lets the runs
        in flight finish; a shorter queue drops its oldest runs."""
        self.config = config
        self.stalls.config = config
        for evicted in self._admission.use(config):
            await self._end(
                evicted.run_id, RunStatus.DROPPED, f"evicted: max_queue is now {config.max_queue}"
            )
        await self._fill_slots()

    async def retire(self, drain_timeout: float) -> None:
        """The workflow left nerve.yaml: its queued runs are dropped, its runs in flight may
        finish within `drain_timeout` (then `interrupted`), and its worker stops; none follows."""
        removed = "its workflow was removed from nerve.yaml"
        self._closed = removed  # no new run is admitted from now on
        for run in [*self._waiting, *self._admission.queue]:
            await self._end(run.run_id, RunStatus.DROPPED, removed)
        self._waiting.clear()
        while self._admission.queue.claim() is not None:
            pass
        self.drain_and_respawn(drain_timeout)

    # -- the worker's messages -------------------------------------------------------------------

    async def _read(self, worker: WorkerProcess) -> None:
        self._readers += 1
        try:
            await self._read_messages(worker)
        finally:
            self._readers -= 1

    async def _read_messages(self, worker: WorkerProcess) -> None:
        async with anyio.create_task_group() as writes:
            while True:
                try:
                    message = await worker.receive()
                except WorkerExited:
                    return
                except ProtocolError as exc:
                    # Nothing it says can be trusted from here on: supervision records its runs
                    # crashed and resumes them on a fresh worker, as a sense group's is.
                    log.error("workflow %s: %s; killing its worker", self.name, exc)
                    worker.kill()
                    return
                match message:
                    case ThreadMessage():
                        run = self._active.get(message.run_id)
                        if run is not None and run.worker is worker:
                            writes.start_soon(self._persist, worker, message)
                    case ThreadEnd():
                        with contained(f"workflow {self.name}: the end of run {message.run_id}"):
                            await self._thread_ended(worker, message)
                    case Progress():
                        run = self._active.get(message.of)
                        if run is not None and run.worker is worker:
                            report = ProgressReport(message.fraction, message.note, now_ms())
                            self.progress[message.of] = report
                    case LimitRequest():  # ctx.limit() in a role
                        writes.start_soon(self._grant, worker, message)
                    case RunLog():
                        self._record(
                            LogRow(
                                self.name,
                                LogType.WORKFLOW_LOG,
                                {
                                    "level": message.level,
                                    "message": message.message,
                                    "fields": message.fields,
                                },
                                ref_id=message.run_id,
                            )
                        )
                    case _:
                        log.warning("workflow %s: unexpected %s", self.name, type(message).__name__)

    async def _grant(self, worker: WorkerProcess, request: LimitRequest) -> None:
        with contextlib.suppress(WorkerExited):
            await worker.send(self._limits.grant(request))

    async def _persist(self, worker: WorkerProcess, message: ThreadMessage) -> None:
        with contained(f"workflow {self.name}: a message of run {message.run_id}"):
            await self._persist_message(worker, message)

    async def _persist_message(self, worker: WorkerProcess, message: ThreadMessage) -> None:
        op = AppendMessage(message.run_id, self.name, message.round, message.role, message.content)
        try:
            await self._write(op)
        except Exception as exc:
            log.error(
                "workflow %s: run %s: a message could not be committed: %s",
                self.name,
                message.run_id,
                exc,
            )
            if self._active.pop(message.run_id, None) is not None:
                await self._end(
                    message.run_id, RunStatus.FAILED, f"a message could not be committed: {exc}"
                )
            return
        self.stalls.heard(message.run_id)
        with contextlib.suppress(WorkerExited):  # a dead worker is supervision's to handle
            await worker.send(MessageAck(message.run_id, message.round))

    async def _thread_ended(self, worker: WorkerProcess, end: ThreadEnd) -> None:
        run = self._active.get(end.run_id)
        if run is None or run.worker is not worker:
            return  # cancelled or interrupted already
        del self._active[end.run_id]
        if end.run_id in self.stalls.restarting:  # on_stall: restart, its thread now cancelled
            self.stalls.restarting.discard(end.run_id)
            reason = "stalled: its thread was cancelled; it resumes from its messages"
            await self._write(TransitionRun(end.run_id, RunStatus.CRASHED, reason=reason))
            self._to_resume.append(run)
            await self._resume_crashed()
            return
        status = RunStatus.COMPLETED if end.status == "completed" else RunStatus.FAILED
        await self._end(end.run_id, status, end.reason, end.traceback)
        await self._fill_slots()

    # -- helpers ---------------------------------------------------------------------------------

    def _can_start(self) -> bool:
        worker = self.worker
        running = self.state is WorkerState.RUNNING and self._up.is_set()
        return running and worker is not None and worker.alive

    async def _fill_slots(self) -> None:
        """Queued runs take the free slots; they start now, or when the worker is up."""
        while (run := self._admission.claim()) is not None:
            self._waiting.append(run)
        await self._start_waiting()

    async def _start_waiting(self) -> None:
        while self._waiting and self._can_start():
            await self._start(self._waiting.pop(0))

    def _started(self, run: Run) -> tuple[tuple[TransitionRun, AppendMessage], WorkflowMessage]:
        """`run` started with its START message (always in one commit, so a run is never
        `started` without it, whenever nerve dies), and that message as its thread begins."""
        ts = now_ms()
        started = TransitionRun(run.run_id, RunStatus.STARTED, ts=ts)
        message = AppendMessage(run.run_id, self.name, 0, START, run.prompt, ts=ts)
        return (started, message), WorkflowMessage(0, START, run.prompt, ts)

    async def _start(self, run: Run) -> None:
        ops, first = self._started(run)
        await self._write(Together(ops))
        await self._send_start(run, [first])

    async def _resume_crashed(self) -> None:
        if not self._can_start():
            return
        await self._writer.write_async(AppendLogs([]))  # every message sent so far is committed
        while self._to_resume:
            run = self._to_resume.pop(0)
            await self._write(TransitionRun(run.run_id, RunStatus.STARTED, reason="resumed"))
            thread = await self._reader.messages(run.run_id)
            await self._send_start(run, thread, resume=True)

    async def _send_start(
        self, run: Run, thread: list[WorkflowMessage], *, resume: bool = False
    ) -> None:
        """Hand `run` to the current worker with its thread (persisted already)."""
        assert self.worker is not None
        run.worker = self.worker
        self._active[run.run_id] = run
        self.stalls.began(run.run_id)
        retry = self._admission.config.retry
        tries = None if retry is None else (retry.attempts, retry.backoff, retry.max_backoff)
        start = StartThread(run.run_id, run.prompt, run.max_rounds, thread, resume, tries)
        with contextlib.suppress(WorkerExited):  # supervision records it crashed, resumes it
            await self.worker.send(start)

    async def _end(
        self, run_id: str, status: RunStatus, reason: str | None, trace: str | None = None
    ) -> None:
        error = reason if status is RunStatus.FAILED else None
        if trace:
            error = f"{reason}\n{trace}"
        self.progress.pop(run_id, None)
        self.stalls.forget(run_id)
        self._admission.finish(run_id)
        await self._write(TransitionRun(run_id, status, reason=reason, error=error))

    async def _write(self, op: WriteOp) -> None:
        await self._writer.write_async(op)
        self._show(op)
        self._stir()

    def _show(self, op: WriteOp) -> None:
        """Show observers (the live view) what was just committed."""
        if self._observe is not None:
            for row in committed_rows(self.name, op):
                self._observe(row)
