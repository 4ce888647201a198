"""SenseGroup: one sense group's worker, kept alive, running one compute at a time.

The group owns a queue of computes for its senses and a worker process, supervised by the one
`Supervisor` (spawn, readiness, backoff, crash loop, FATAL, revival: supervise/supervisor.py); the
group says only how its worker is served. Each compute runs under its sense's timeout; a compute
over it is abandoned: the worker is killed and respawned, and what is queued runs on the new
worker, as does what was sent to a worker that died. The group reports each compute's
`ComputeOutcome` to whoever asked for it; turning outcomes into log rows and signals is the
outcome router's job.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from nerve_core import (
    ComputeRequest,
    ComputeResult,
    LimitRequest,
    LogType,
    Progress,
    SenseLog,
    Signal,
    TriggerKind,
    WorkerReady,
    WorkerState,
)
from nerve_core.errors import ProtocolError
from nerve_store import LogRow, now_ms

from ..supervise.cgroups import POLL, GroupCgroup
from ..supervise.policy import GroupPolicy
from ..supervise.progress import ProgressReport
from ..supervise.resource_watch import limit_row
from ..supervise.supervisor import ExitReason, Supervised, Supervisor, shut_down
from ..supervise.worker_pool import WorkerExited, WorkerPool, WorkerProcess
from ..timing.limits import RateLimits
from ..timing.pauses import PauseWatch
from .parking import Parking

log = logging.getLogger("nerve")

PIPELINE = 8  # computes sent ahead to a worker, run by it one at a time in order
# A worker dying of these (or exiting of itself) under a compute was killed by that compute: an
# abort, a segfault, a bad instruction. SIGKILL and SIGTERM come from outside (an operator, the
# OOM killer): those count toward the group's crash loop as before.
_FAULTS = frozenset(
    {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGSYS}
)


def self_inflicted(exit_code: int | None) -> bool:
    """Whether a worker's exit code (negative: the signal that ended it) says it ended itself."""
    return exit_code is not None and (exit_code >= 0 or -exit_code in _FAULTS)


class OutcomeKind(StrEnum):
    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    CRASH = "crash"
    UNAVAILABLE = "unavailable"  # the group is FATAL or stopping: the compute did not run
    PARKED = "parked"  # its sense kept killing the worker and is set aside: it did not run


@dataclass(frozen=True, slots=True)
class ComputeOutcome:
    kind: OutcomeKind
    result: ComputeResult | None = None
    detail: str | None = None


class _Job:
    def __init__(self, request: ComputeRequest, timeout: float, cause: str | None) -> None:
        self.request = request
        self.timeout = timeout
        self.cause = cause  # the lineage id of the trigger it runs for
        self.outcome: ComputeOutcome | None = None
        self.done = anyio.Event()

    def finish(self, outcome: ComputeOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.done.set()


class SenseGroup(Supervised):
    def __init__(
        self,
        name: str,
        senses: list[str],
        root: Path,
        pool: WorkerPool,
        record: Callable[[LogRow], None],
        on_sense_log: Callable[[SenseLog, str | None], None],
        policy: GroupPolicy | None = None,
        limits: RateLimits | None = None,
        pauses: PauseWatch | None = None,
    ) -> None:
        self.name = name
        self.senses = senses
        self.root = root
        self.load_errors: dict[str, str] = {}
        self._record = record
        self._on_sense_log = on_sense_log
        self._policy = policy or GroupPolicy()
        self._limits = limits or RateLimits()  # the kernel's, shared with every worker
        self.parking = Parking(name, self._policy, record)
        self._pauses = pauses or PauseWatch()  # the kernel's: time it was away is no one's fault
        self._blamed = False  # the last crash was under a compute: its sense's doing
        self._supervisor = Supervisor(self, pool, record, self._policy)
        self._ids = itertools.count(1)
        self._jobs_in, self._jobs_out = anyio.create_memory_object_stream[_Job](math.inf)
        self._sent: collections.deque[_Job] = collections.deque()  # sent, not yet answered
        self._backlog: collections.deque[_Job] = collections.deque()  # to resend after a restart
        self._restart_reason: str | None = None  # why the kernel killed the worker on purpose
        self._idle: anyio.CancelScope | None = None
        self.progress: dict[str, ProgressReport] = {}  # sense → what its compute last said
        # Its `limits.memory`, and the cgroup that enforces it (set by the resource watch)
        self.memory_limit: int | None = None
        self.memory_cgroup: GroupCgroup | None = None
        self.memory_polled_why: str | None = None  # why no cgroup enforces it, if none can

    # -- what the scheduler calls ----------------------------------------------------------------

    async def compute(
        self,
        sense: str,
        trigger: TriggerKind,
        signal: Signal | None,
        timeout: float,
        cause: str | None = None,
    ) -> ComputeOutcome:
        """Queue a compute of `sense` and wait for its outcome. `cause` is the lineage id of the
        trigger it runs for: the `ctx.log` rows it writes carry it."""
        if self.state is WorkerState.FATAL:
            return ComputeOutcome(OutcomeKind.UNAVAILABLE, detail="the group's worker is FATAL")
        if self._supervisor.stopping.is_set():
            return ComputeOutcome(OutcomeKind.UNAVAILABLE, detail="the group is stopping")
        parked = self.parking.why_parked(sense)
        if parked is not None:
            return ComputeOutcome(OutcomeKind.PARKED, detail=parked)
        job = _Job(ComputeRequest(next(self._ids), sense, trigger, signal), timeout, cause)
        self._jobs_in.send_nowait(job)  # unbounded: the scheduler keeps it to two per sense
        await job.done.wait()
        assert job.outcome is not None
        return job.outcome

    def reload(self, senses: list[str] | None = None) -> None:
        """Replace the worker (its senses' code or config changed, or `senses` is its new list):
        the computes sent to it finish first, then a fresh worker loads the senses as they are
        now; nothing queued is lost."""
        if senses is not None:
            self.senses = senses
        self.parking.release_all("its group was reloaded: its code or config changed")
        self._supervisor.replace()
        if self._idle is not None:
            self._idle.cancel()

    @property
    def memory_enforced_by(self) -> str | None:
        """How its memory limit is enforced: "cgroup v1", "cgroup v2" or "poll" (None: no
        limit)."""
        if self.memory_limit is None:
            return None
        worker = self.worker
        cgroup = self.memory_cgroup
        if cgroup is None or cgroup.limit is None or (worker is not None and worker.cgroup_error):
            return POLL
        return cgroup.method

    @property
    def memory_limit_why(self) -> str | None:
        """Why its memory limit is polled rather than a cgroup's (None: it is not polled)."""
        if self.memory_enforced_by != POLL:
            return None
        worker = self.worker
        if worker is not None and worker.cgroup_error and self.memory_cgroup is not None:
            return f"its worker could not join its cgroup: {worker.cgroup_error}"
        return self.memory_polled_why

    def restart_over_limit(self, why: str) -> None:
        """Kill the worker because it is over a resource limit; it is respawned at once."""
        if self.worker is not None and self.worker.alive:
            self._restart_reason = why
            self.worker.kill()

    async def stop(self) -> None:
        """Finish the compute in flight, then shut the worker down; what is queued is dropped."""
        self._supervisor.stop()
        await self._jobs_in.aclose()

    # -- supervision: the shared algorithm, and this tenant's hooks ---------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        with self._jobs_in, self._jobs_out:
            await self._supervisor.run()

    def cgroup(self) -> GroupCgroup | None:
        return self.memory_cgroup

    def spawn_args(self) -> tuple[str, str, dict[str, Any]]:
        args = {"root": str(self.root), "group": self.name, "senses": self.senses}
        return "sense", f"group:{self.name}", args

    def identity(self) -> dict[str, Any]:
        return {"group": self.name}

    def start_details(self) -> dict[str, Any]:
        return {"senses": self.senses}

    def wants_worker(self) -> bool:
        return True

    async def has_work(self) -> None:
        return  # a group's worker never stops for want of work

    def blames_work(self) -> bool:
        blamed, self._blamed = self._blamed, False
        return blamed

    async def serve(
        self, worker: WorkerProcess, ready: WorkerReady
    ) -> tuple[ExitReason, str | None]:
        self.load_errors = dict(ready.errors)
        for sense, error in ready.errors.items():
            self._record(LogRow(sense, LogType.COMPUTE_ERROR, {"phase": "load", "error": error}))
        cgroup = self.memory_cgroup
        reason = await self._serve(worker, 0 if cgroup is None else cgroup.oom_kills())
        detail, self._restart_reason = self._restart_reason, None
        if detail is not None:  # killed over a limit, not crashed
            return ExitReason.LIMIT, detail
        return reason, None

    async def lost(self, worker: WorkerProcess, reason: ExitReason, code: int) -> None:
        """What was sent to it was requeued or finished by `_serve` already."""
        self.progress.clear()  # its computes' reports went with it

    async def fatal(self, reason: str) -> None:
        message = f"group {self.name}: {reason}"
        while (job := self._next_job_nowait()) is not None:  # what was queued cannot run
            job.finish(ComputeOutcome(OutcomeKind.UNAVAILABLE, detail=message))

    async def _serve(self, worker: WorkerProcess, oom_kills: int) -> ExitReason:
        reason = ExitReason.CRASH
        async with anyio.create_task_group() as group:

            async def watch_exit() -> None:
                await worker.wait()
                # A receive under way ends by itself at the end of the stream; cancelling it
                # while the stream closes can leave a stale reader behind (anyio). Only a wait
                # for the next job needs cutting short.
                if not worker.receiving:
                    group.cancel_scope.cancel()

            group.start_soon(watch_exit)
            reason = await self._work(worker)
            group.cancel_scope.cancel()
        if reason is ExitReason.CRASH:
            self._over_cgroup_limit(worker, oom_kills)
        if reason is ExitReason.CRASH and self._sent:  # the worker died under a compute
            job = self._sent.popleft()
            detail = self._restart_reason or f"worker exited with code {worker.exit_code}"
            job.finish(ComputeOutcome(OutcomeKind.CRASH, detail=detail))
            if self._restart_reason is None and self_inflicted(worker.exit_code):
                self._blamed = True  # the compute's doing, not a kill from outside
                self.parking.killed(job.request.sense, detail)
        self._requeue_sent()
        return reason

    def _over_cgroup_limit(self, worker: WorkerProcess, oom_kills: int) -> None:
        """A SIGKILL the OOM killer sent in its memory cgroup is a limit kill, said as one."""
        cgroup = self.memory_cgroup
        if cgroup is None or cgroup.limit is None or self._restart_reason is not None:
            return
        if worker.exit_code != -signal.SIGKILL or cgroup.oom_kills() <= oom_kills:
            return
        peak = cgroup.peak() or cgroup.limit
        self._restart_reason = (
            f"at its memory limit ({cgroup.limit}): killed by the OS ({cgroup.method})"
        )
        self._record(limit_row(self.name, worker.pid, "memory", peak, cgroup.limit, cgroup.method))

    async def _work(self, worker: WorkerProcess) -> ExitReason:
        """Send queued computes ahead (up to `PIPELINE` at once: the worker still runs them one
        at a time, in order, but need not wait for the kernel between them) and collect their
        results. The head of what was sent is the compute running now; its deadline counts from
        when the result before it arrived."""
        try:
            return await self._pipeline(worker)
        except (WorkerExited, ProtocolError) as exc:
            log.warning("group %s: %s", self.name, exc)
            worker.kill()
            await worker.wait()
            return ExitReason.CRASH

    async def _pipeline(self, worker: WorkerProcess) -> ExitReason:
        started = anyio.current_time()
        while True:
            if not self._sent:
                if self._supervisor.replaced.is_set():
                    await self._shut_down(worker)
                    return ExitReason.RELOAD
                with anyio.CancelScope() as self._idle:
                    job = await self._next_job()
                if self._idle.cancelled_caught:
                    continue  # woken for a reload
                if job is None:
                    return await self._shut_down(worker)
                started = anyio.current_time()
                await self._send(worker, job)
            while len(self._sent) < PIPELINE and (job := self._next_job_nowait()) is not None:
                await self._send(worker, job)
            head = self._sent[0]
            while True:  # until its result, or its deadline (moved by the kernel's own pauses)
                with anyio.move_on_after(self._due(head, started) - anyio.current_time()) as late:
                    result = await self._result_of(worker, head)
                if not late.cancelled_caught or anyio.current_time() >= self._due(head, started):
                    break
            self._sent.popleft()
            if late.cancelled_caught:
                head.finish(ComputeOutcome(OutcomeKind.TIMEOUT, detail=f"over {head.timeout:g}s"))
                worker.kill()
                return ExitReason.TIMEOUT
            started = anyio.current_time()  # the worker moved on to the next one sent, if any
            kind = OutcomeKind.OK if result.ok else OutcomeKind.ERROR
            head.finish(ComputeOutcome(kind, result))

    def _due(self, job: _Job, started: float) -> float:
        """When `job`, running since `started`, times out: its deadline moved by the time the
        kernel itself was away meanwhile (SIGSTOP, a suspend), which is no compute's doing."""
        return started + job.timeout + self._pauses.paused_since(started)

    async def _send(self, worker: WorkerProcess, job: _Job) -> None:
        self._sent.append(job)
        await worker.send(job.request)

    async def _next_job(self) -> _Job | None:
        """The next job to run, waiting for one; None once the group is stopping."""
        while True:
            if self._backlog:
                job = self._backlog.popleft()
            else:
                try:
                    job = await self._jobs_out.receive()
                except anyio.EndOfStream:
                    return None
            if self._runnable(job):
                return job

    def _next_job_nowait(self) -> _Job | None:
        while True:
            if self._backlog:
                job = self._backlog.popleft()
            else:
                try:
                    job = self._jobs_out.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    return None
            if self._runnable(job):
                return job

    def _runnable(self, job: _Job) -> bool:
        """Whether `job` may go to the worker: not when its sense was parked after it queued."""
        parked = self.parking.why_parked(job.request.sense)
        if parked is not None:
            job.finish(ComputeOutcome(OutcomeKind.PARKED, detail=parked))
        return parked is None

    def _requeue_sent(self) -> None:
        """Jobs sent to a worker that died before starting them run on the next worker, first."""
        while self._sent:
            self._backlog.appendleft(self._sent.pop())

    async def _result_of(self, worker: WorkerProcess, head: _Job) -> ComputeResult:
        while True:
            message = await worker.receive()
            if isinstance(message, SenseLog):  # written by the compute running now: the head
                self._on_sense_log(message, head.cause)
            elif isinstance(message, Progress) and message.of == head.request.sense:
                report = ProgressReport(message.fraction, message.note, now_ms())
                self.progress[message.of] = report
            elif isinstance(message, LimitRequest):  # ctx.limit() in the compute running now
                await worker.send(self._limits.grant(message))
            elif isinstance(message, ComputeResult) and message.id == head.request.id:
                self.progress.pop(head.request.sense, None)
                return message
            else:
                raise ProtocolError(f"unexpected {type(message).__name__} from group {self.name}")

    async def _shut_down(self, worker: WorkerProcess) -> ExitReason:
        await shut_down(worker, self._policy.stop_timeout_s)
        return ExitReason.STOPPED
