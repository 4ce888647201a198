"""Supervisor: the one supervision algorithm every worker of the kernel runs under.

A sense group and a workflow runner each own a `Supervisor` and tell it, through the `Tenant`
hooks, only what differs between them: how to spawn their worker, how to serve it once it is
ready, and what its loss or a crash loop means for the work they hold. The algorithm itself is
here, once:

- spawn through the pool, then await the worker's READY under `ready_timeout_s`; a worker that
  dies or says anything else first is killed, reaped and logged `worker.exit` (`start_failed`);
- while it runs, the tenant serves it; its exit is logged `worker.exit` with the reason;
- a crash (or a failed start) counts toward the crash loop and respawns after a growing backoff
  (the first exit in the window at once); a limit kill counts but respawns at once; a timeout
  kill or a replacement (new code) neither counts nor waits, nor does a crash the tenant blames
  on the work it gave the worker (a sense group parks the sense whose computes keep killing it);
- 5 counted exits within 60 s: FATAL, logged `worker.crash_loop`; the tenant's work is failed;
  a later `replace()` (the code or config changed) revives it with a clean history;
- `replace()` while a fresh worker is still loading replaces that one too (a generation count:
  the code it loaded may be older than the change).

States take supervisor's words: STARTING, RUNNING, BACKOFF, FATAL, STOPPED.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Protocol

import anyio

from nerve_core import LogType, WorkerReady, WorkerState
from nerve_core.errors import ProtocolError
from nerve_store import KERNEL_SOURCE, LogRow

from ..lifetimes import until_first
from .cgroups import GroupCgroup
from .policy import CrashHistory, GroupPolicy
from .worker_pool import WorkerExited, WorkerPool, WorkerProcess, WorkerStartError

log = logging.getLogger("nerve")


class ExitReason(StrEnum):
    CRASH = "crash"
    START_FAILED = "start_failed"
    TIMEOUT = "timeout"  # killed by the tenant: a compute ran over its timeout
    LIMIT = "limit"  # killed over a resource limit
    RELOAD = "reload"  # replaced by a fresh worker (its code or config changed)
    IDLE = "idle"  # stopped by the tenant for want of work: the next work starts a worker
    STOPPED = "stopped"


class Tenant(Protocol):
    """What a supervised owner (a sense group, a workflow runner) adds to the algorithm."""

    def spawn_args(self) -> tuple[str, str, dict[str, Any]]:
        """The worker's kind, its name for logs, and the arguments its entry point takes."""
        ...

    def cgroup(self) -> GroupCgroup | None:
        """The memory cgroup its worker joins as it is forked, if it has one."""
        ...

    def blames_work(self) -> bool:
        """Whether the crash `serve` just returned was the work's doing, not the worker's: it
        neither counts toward a crash loop nor waits for a backoff."""
        ...

    def identity(self) -> dict[str, Any]:
        """What names the owner in `worker.*` rows, e.g. `{"group": "system"}`."""
        ...

    def start_details(self) -> dict[str, Any]:
        """What else a `worker.start` row says (a group's senses, say)."""
        ...

    def wants_worker(self) -> bool:
        """Whether a (new) worker should start: False once the tenant is retired."""
        ...

    async def has_work(self) -> None:
        """Return once there is work for a worker (after an `IDLE` exit)."""
        ...

    async def serve(
        self, worker: WorkerProcess, ready: WorkerReady
    ) -> tuple[ExitReason, str | None]:
        """Use the ready worker until it exits or must go; say why (and a detail for the
        `worker.exit` row). `RELOAD` with the worker alive means the tenant keeps it (to drain)
        and a fresh one is wanted; `STOPPED` that the tenant shut it down. Otherwise the
        supervisor kills and reaps it."""
        ...

    async def lost(self, worker: WorkerProcess, reason: ExitReason, code: int) -> None:
        """The worker is gone (reaped, its exit logged): recover what it held."""
        ...

    async def fatal(self, reason: str) -> None:
        """A crash loop: nothing can run the tenant's work until it is revived."""
        ...


class Supervisor:
    def __init__(
        self,
        tenant: Tenant,
        pool: WorkerPool,
        record: Callable[[LogRow], None],
        policy: GroupPolicy,
    ) -> None:
        self.state = WorkerState.STOPPED
        self.worker: WorkerProcess | None = None
        self.restarts = 0
        self.first_start = anyio.Event()  # the first worker is up, or failed to come up
        self.stopping = anyio.Event()
        self._tenant = tenant
        self._pool = pool
        self._record = record
        self._policy = policy
        self._crashes = CrashHistory(policy)
        self._generation = 0  # replacements asked for
        self._replaced = anyio.Event()  # set by replace() for the worker of the moment

    @property
    def replaced(self) -> anyio.Event:
        """Set when the current worker is to be replaced: tenants wait on it while serving."""
        return self._replaced

    def replace(self) -> None:
        """The code or config changed: replace the worker (or the one still loading), or leave
        FATAL with a clean history."""
        self._generation += 1
        self._replaced.set()

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        """Supervise until `stop()`."""
        while not self.stopping.is_set() and self._tenant.wants_worker():
            reason = await self._one_worker()
            if reason is ExitReason.STOPPED or self.stopping.is_set():
                break
            if reason is ExitReason.IDLE:  # no process until there is work, or new code to load
                self.state = WorkerState.IDLE  # (a reload's worker shows its load errors at once)
                await until_first(self.stopping.wait, self._tenant.has_work, self._replaced.wait)
                continue
            if reason in (ExitReason.TIMEOUT, ExitReason.RELOAD) or (
                reason is ExitReason.CRASH and self._tenant.blames_work()
            ):
                self.restarts += 1
                continue  # a deliberate replacement, or the work's fault: at once, not counted
            # A limit kill respawns at once but counts: a worker over its limit on every
            # compute is a crash loop too.
            delay = self._crashes.record(
                anyio.current_time(), backoff=reason is not ExitReason.LIMIT
            )
            if delay is None:
                await self._enter_fatal()
                if not await self._revived():
                    break
                continue
            self.state = WorkerState.BACKOFF
            with anyio.move_on_after(delay):
                await self.stopping.wait()
            self.restarts += 1
        if self.state is not WorkerState.FATAL:
            self.state = WorkerState.STOPPED

    async def _one_worker(self) -> ExitReason:
        self.state = WorkerState.STARTING
        generation = self._generation  # the code this worker loads is at least this new
        self._replaced = anyio.Event()
        kind, name, args = self._tenant.spawn_args()
        try:
            cgroup = self._tenant.cgroup()
            procs = None if cgroup is None else cgroup.procs
            worker = await self._pool.spawn(kind, name, args, procs)
        except WorkerStartError as exc:
            log.error("%s: the worker did not start: %s", name, exc)
            self.first_start.set()
            return ExitReason.START_FAILED
        try:
            with anyio.fail_after(self._policy.ready_timeout_s):
                ready = await worker.receive()
            if not isinstance(ready, WorkerReady):
                raise ProtocolError(f"expected ready, got {type(ready).__name__}")
        except (TimeoutError, WorkerExited, ProtocolError) as exc:
            log.error("%s: the worker did not start: %s", name, exc)
            worker.kill()
            code = await worker.wait()
            self._record_exit(worker, code, ExitReason.START_FAILED, str(exc) or repr(exc))
            self.first_start.set()
            return ExitReason.START_FAILED
        if self._generation != generation:  # replaced again while it loaded: never use it
            await shut_down(worker, self._policy.stop_timeout_s)
            return ExitReason.RELOAD
        self.worker = worker
        self.state = WorkerState.RUNNING
        self.first_start.set()
        self._record(
            LogRow(
                KERNEL_SOURCE,
                LogType.WORKER_START,
                {**self._tenant.identity(), "pid": worker.pid, **self._tenant.start_details()},
            )
        )
        reason, detail = await self._tenant.serve(worker, ready)
        if reason is ExitReason.RELOAD and worker.alive:
            return reason  # the tenant drains the old worker; a fresh one starts now
        if worker.alive and reason is not ExitReason.STOPPED:
            worker.kill()
        code = await worker.wait()
        self._record_exit(worker, code, reason, detail)
        await self._tenant.lost(worker, reason, code)
        return reason

    async def _enter_fatal(self) -> None:
        self.state = WorkerState.FATAL
        count, window = self._policy.crash_limit, self._policy.crash_window_s
        reason = f"the worker exited {count} times within {window:g}s; respawn stopped"
        log.error("%s: %s", self._tenant.spawn_args()[1], reason)
        self._record(
            LogRow(
                KERNEL_SOURCE,
                LogType.WORKER_CRASH_LOOP,
                {**self._tenant.identity(), "exits": count, "window_s": window},
            )
        )
        await self._tenant.fatal(reason)

    async def _revived(self) -> bool:
        """FATAL until stopped (False) or replaced (True: a clean crash history)."""
        await until_first(self.stopping.wait, self._replaced.wait)
        if self.stopping.is_set():
            return False
        self._crashes.clear()
        log.info("%s: its code or config changed; leaving FATAL", self._tenant.spawn_args()[1])
        return True

    def _record_exit(
        self, worker: WorkerProcess, code: int, reason: ExitReason, detail: str | None
    ) -> None:
        payload = {**self._tenant.identity(), "pid": worker.pid, "code": code}
        payload["reason"] = str(reason)
        if detail:
            payload["detail"] = detail
        self._record(LogRow(KERNEL_SOURCE, LogType.WORKER_EXIT, payload))


class Supervised:
    """What a supervised owner shows of its worker: its supervisor's view, read-only."""

    _supervisor: Supervisor

    @property
    def state(self) -> WorkerState:
        return self._supervisor.state

    @property
    def worker(self) -> WorkerProcess | None:
        return self._supervisor.worker

    @property
    def restarts(self) -> int:
        return self._supervisor.restarts

    @property
    def first_start(self) -> anyio.Event:
        """Set once the first worker is up, or failed to come up."""
        return self._supervisor.first_start


async def shut_down(worker: WorkerProcess, timeout: float) -> None:
    """Ask `worker` to exit, wait up to `timeout`, then kill it."""
    from nerve_core import ShutdownRequest

    try:
        await worker.send(ShutdownRequest())
    except WorkerExited:
        return
    with anyio.move_on_after(timeout, shield=True):
        await worker.wait()
    worker.kill()
