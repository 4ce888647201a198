"""Kernel: the composition root. It builds the parts from the config, starts them in order, and
stops them in reverse; it holds no scheduling, routing or storage logic of its own.

Start: the worker pool (its fork server is started before any thread of the kernel's), then the
log writer (the kernel is the only writer of logs.db), the signal bus, one supervised worker per
sense group, and the reflex scheduler. Stop: the scheduler stops starting computes and lets those
in flight finish, the groups shut their workers down (bounded, then killed), and the log writer
drains last.

Embedding::

    kernel = Kernel(load_nerve_config(root / "nerve.yaml"), root)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)      # returns once the kernel is ready
        kernel.trigger_sense("cpu-usage")
        print(kernel.health())
        kernel.stop()
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import orjson
from anyio.abc import TaskGroup, TaskStatus
from anyio.lowlevel import EventLoopToken, current_token

from nerve_core import (
    HealthResponse,
    LimitsConfig,
    LogType,
    NerveConfig,
    ReloadMode,
    RunStatus,
    SenseInfo,
    SenseLog,
    Signal,
    Synchronous,
    TimerInfo,
    TriggerKind,
    WorkflowDirective,
    Workspace,
)
from nerve_core.errors import NerveError, StoreUnavailable
from nerve_store import (
    KERNEL_SOURCE,
    AppendLogs,
    LogReader,
    LogRow,
    LogStore,
    LogWriter,
    Stall,
    WriteOp,
    make_dirs,
    now_ms,
)

from .containment import contained
from .control.archive_schedule import ArchiveSchedule
from .control.config_diff import ConfigDiff, diff_configs
from .control.delayed_triggers import DelayedTriggers
from .control.file_watch import FileWatcher
from .control.ipc import DaemonIpcServer
from .control.reload import Reload
from .control.reload_plan import running_now
from .control.store_check import StoreCheck
from .explain import explain_run, explain_sense, explain_signal
from .explain.live import live_sense
from .lifetimes import Tracked, left
from .options import KernelOptions, UnknownSense
from .senses.bus import SignalBus
from .senses.group import SenseGroup
from .senses.kernel_signals import KernelSignals
from .senses.keys import RecentKeys
from .senses.ledger import Ledger
from .senses.outcomes import OutcomeRouter
from .senses.retries import Retries
from .senses.scheduler import Decision, ReflexScheduler, Trigger
from .state import KernelState, Parts, render_health, sense_infos, snapshot, stall_problem
from .supervise.cgroups import POLL, MemoryCgroups
from .supervise.resource_watch import ResourceWatch
from .supervise.worker_pool import WorkerPool
from .timing.clock import AnyioClock
from .timing.limits import RateLimits
from .timing.marks import MarkBuffer
from .timing.pauses import PauseWatch
from .workflows.manager import WorkflowManager
from .workflows.runner import WorkflowRunner
from .workflows.runs import RunnerParts, UnknownWorkflow

__all__ = ["Kernel", "KernelOptions", "UnknownSense"]

log = logging.getLogger("nerve")
WAL_SYNC_EVERY_S = 1.0  # under `synchronous: normal`, what a power cut can take back at most

_LIFECYCLE = {
    LogType.KERNEL_START,
    LogType.KERNEL_STOP,
    LogType.WORKER_START,
    LogType.WORKER_EXIT,
    LogType.WORKER_CRASH_LOOP,
    LogType.WORKER_LIMIT,
    LogType.CONFIG_RELOAD,
    LogType.CONFIG_ERROR,
    LogType.STORE_ARCHIVE,
}


class Kernel:
    def __init__(
        self, config: NerveConfig, root: Path, options: KernelOptions | None = None
    ) -> None:
        self.config = config
        self.workspace = Workspace(Path(root).absolute())
        self.options = options or KernelOptions()
        self.ready = anyio.Event()
        self.stopped = anyio.Event()
        self.groups: dict[str, SenseGroup] = {}
        self._group_of: dict[str, SenseGroup] = {}
        self._writer: LogWriter | None = None
        self._scheduler: ReflexScheduler | None = None
        self._router: OutcomeRouter | None = None
        self._stop = anyio.Event()
        self._started_at = 0.0
        self._pool: WorkerPool | None = None
        self._workflows: WorkflowManager | None = None
        self._parts: TaskGroup | None = None
        self._bus: SignalBus | None = None
        self._watch: ResourceWatch | None = None
        self._cgroups = MemoryCgroups(None, POLL)  # found at the start of `run`
        self._tracked: dict[str, Tracked] = {}
        self._reloading = anyio.Lock()
        self.ledger = Ledger(self._record)
        self._reader: LogReader | None = None
        self._reloads = Reload(self.workspace.config_path, self, self._record)
        self._token: EventLoopToken | None = None
        self.kernel_signals: KernelSignals | None = None
        self.ipc_server: DaemonIpcServer | None = None
        self.clock = self.options.clock or AnyioClock()
        self.delayed = DelayedTriggers(
            self.clock, self._write, lambda: self.config, self._request, self._launch_delayed
        )
        self._sense_keys = RecentKeys()  # `trigger-sense` idempotency keys, ten minutes
        self.pauses = PauseWatch()  # how long the kernel itself was away (SIGSTOP, suspend)
        self.limits = RateLimits()  # ctx.limit(): one window per name, for every worker
        self.store_check = StoreCheck(self.workspace.logs_db, self._record)  # once per start
        self.retries = Retries(lambda: self.config, self.ledger, self._request)

    # -- lifetime --------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until `stop()`; `task_status.started()` (and `ready`) once every part is up."""
        self._started_at = time.monotonic()
        _private_dir(self.workspace.data_dir)
        self._cgroups = MemoryCgroups.find()
        try:
            pool = WorkerPool(self.options.on_output, self.options.group_policy, self._record)
            async with pool:
                self._pool = pool
                store = LogStore.open(
                    self.workspace.logs_db, synchronous=self.config.store.synchronous
                )
                reader = self._reader = LogReader(self.workspace.logs_db)
                try:
                    writer = LogWriter(
                        store,
                        linger_s=self.options.log_linger_s,
                        on_stall_end=self._stall_ended,
                        on_stall_start=self._stall_started,
                        sync_every_s=WAL_SYNC_EVERY_S
                        if self.config.store.synchronous is Synchronous.NORMAL
                        else None,
                    )
                    async with writer:
                        self._writer = writer
                        await self._run_parts(pool, reader, task_status)
                finally:
                    reader.close()
                    store.close()
        finally:
            self._cgroups.close()  # after the pool: its workers have all exited
            self.stopped.set()

    def stop(self) -> None:
        """Ask the kernel to stop gracefully; `run()` returns when it has."""
        self._stop.set()

    async def _run_parts(
        self, pool: WorkerPool, reader: LogReader, task_status: TaskStatus[None]
    ) -> None:
        bus = self._bus = SignalBus()
        assert self._writer is not None
        self._pool = pool
        workflows = WorkflowManager(
            self.config,
            RunnerParts(
                self.workspace.root,
                pool,
                self._writer,
                reader,
                self._record,
                self.options.group_policy,
                self._observe,
                self.limits,
            ),
        )
        self._workflows = workflows
        self._router = OutcomeRouter(self.config, self._record, bus.publish, self._launch)
        self._token = current_token()
        self.kernel_signals = KernelSignals(
            bus.offer, self._record, self._router.new_signal_id, bus.listened
        )
        for group_name, senses in self.config.sense_groups().items():
            self._add_group(group_name, list(senses))
        self._record(
            LogRow(
                KERNEL_SOURCE,
                LogType.KERNEL_START,
                {
                    "pid": os.getpid(),
                    "senses": len(self.config.senses),
                    "groups": list(self.groups),
                },
            )
        )
        async with anyio.create_task_group() as parts:
            self._parts = parts
            await parts.start(bus.run)
            await parts.start(self.pauses.run)
            parts.start_soon(self.store_check.run)
            self._watch = ResourceWatch(
                self.groups,
                self._limits(),
                self._record,
                self.options.resource_interval_s,
                self._cgroups,
            )
            for name, group in self.groups.items():
                self._tracked[f"group:{name}"] = await Tracked.start(parts, group.run)
            for name, runner in workflows.runners.items():
                self._tracked[f"workflow:{name}"] = await Tracked.start(parts, runner.run)
            with anyio.move_on_after(self.options.group_policy.ready_timeout_s):
                for group in self.groups.values():
                    await group.first_start.wait()
                for runner in workflows.runners.values():
                    await runner.first_start.wait()
            await workflows.recover()
            await self._start_scheduler(reader)
            await self.delayed.load(reader)
            parts.start_soon(self.delayed.timers.run)
            await parts.start(self._watch.run)
            archive = ArchiveSchedule(
                self.workspace, lambda: self.config, self._record, commit=self._writer.write
            )
            await parts.start(archive.run)
            if self.options.serve_ipc:
                self.ipc_server = DaemonIpcServer(self, self.workspace.socket_path)
                await parts.start(self.ipc_server.run)
            if self.options.watch_files:
                await parts.start(FileWatcher(self.workspace.root, self.files_changed).run)
            self.ready.set()
            task_status.started()
            await self._stop.wait()
            log.info("stopping: letting computes in flight finish")
            # One deadline for the whole stop, not one per part: twenty parts must not make a
            # stop twenty times as long as `stop_timeout_s`.
            deadline = anyio.current_time() + self.options.stop_timeout_s
            if self._scheduler is not None:
                self._scheduler.close()
                await self._tracked.pop("scheduler").finish(left(deadline))
            for group in self.groups.values():
                await group.stop()
            await workflows.stop()
            for tracked in self._tracked.values():
                await tracked.finish(left(deadline))
            parts.cancel_scope.cancel()
        self._record(LogRow(KERNEL_SOURCE, LogType.KERNEL_STOP, {"pid": os.getpid()}))

    def _add_group(self, name: str, senses: list[str]) -> SenseGroup:
        assert self._pool is not None
        group = SenseGroup(
            name,
            senses,
            self.workspace.root,
            self._pool,
            self._record,
            self._on_sense_log,
            self.options.group_policy,
            self.limits,
            self.pauses,
        )
        self.groups[name] = group
        for sense in senses:
            self._group_of[sense] = group
        return group

    def _limits(self) -> dict[str, LimitsConfig]:
        return {name: group.limits for name, group in self.config.groups.items()}

    async def _start_scheduler(self, reader: LogReader) -> None:
        assert self._parts is not None
        assert self._writer is not None
        marks = MarkBuffer(self._writer.post, await reader.marks())
        self._parts.start_soon(marks.run)
        scheduler = ReflexScheduler(
            self.config, self._execute, self.clock, on_decision=self._decided, marks=marks
        )
        self._subscribe(scheduler)
        self._scheduler = scheduler
        self._tracked["scheduler"] = await Tracked.start(self._parts, scheduler.run)

    def _subscribe(self, scheduler: ReflexScheduler) -> None:
        """Route each signal to the senses whose `on` reflexes list its source."""
        assert self._bus is not None
        self._bus.unsubscribe_all()
        for source, subscribers in scheduler.subscriptions().items():
            for sense in subscribers:
                self._bus.subscribe(source, _on_signal(scheduler, sense))

    async def apply_config(self, config: NerveConfig) -> ConfigDiff:
        """Apply a reloaded nerve.yaml as a diff, in place: the scheduler keeps running (senses
        the diff leaves alone keep their timers, pending triggers and computes in flight), only
        the groups whose senses changed get a fresh worker once their computes in flight finish,
        workflow limits apply at once, and removed workflows drain in the background."""
        diff = diff_configs(self.config, config)
        if diff.empty:
            return diff
        async with self._reloading:
            assert self._parts is not None
            assert self._workflows is not None
            assert self._scheduler is not None
            assert self._router is not None
            self.config = config
            self._router.use(config)
            new_groups = config.sense_groups()
            added = [
                self._add_group(name, list(senses))
                for name, senses in new_groups.items()
                if name in diff.groups_added
            ]
            assert self._watch is not None  # limits first: a new group's worker joins its cgroup
            self._watch.use(
                {n: g for n, g in self.groups.items() if n in new_groups}, self._limits()
            )
            for group in added:
                self._tracked[f"group:{group.name}"] = await Tracked.start(self._parts, group.run)
            group_of: dict[str, SenseGroup] = {}
            for name, senses in new_groups.items():
                group = self.groups[name]
                group_of.update(dict.fromkeys(senses, group))
                if name in diff.groups_restarted:
                    group.reload(list(senses))
            # Computes already asked of a removed group still find it until it has stopped.
            self._group_of = {**self._group_of, **group_of}
            self._scheduler.apply(config)
            self._subscribe(self._scheduler)

            async def start_runner(runner: WorkflowRunner) -> None:
                assert self._parts is not None
                tracked = await Tracked.start(self._parts, runner.run)
                self._tracked[f"workflow:{runner.name}"] = tracked

            for runner in await self._workflows.apply(config, start_runner):
                self._parts.start_soon(runner.retire, self.options.drain_timeout_s)
            for name in diff.groups_removed:
                group = self.groups.pop(name)
                await group.stop()
                self._parts.start_soon(
                    self._tracked.pop(f"group:{name}").finish, self.options.stop_timeout_s
                )
            self._group_of = group_of
        return diff

    # -- the API ---------------------------------------------------------------------------------

    def trigger_sense(self, name: str, key: str | None = None) -> Decision | None:
        """Queue a manual compute of sense `name`; None for a key already used (see
        senses/keys.py)."""
        if name not in self.config.senses:
            raise UnknownSense(f'no sense "{name}" in nerve.yaml')
        if self._scheduler is None:
            raise NerveError("the kernel is not running")
        if key is not None and not self._sense_keys.first(name, key):
            return None
        return self._scheduler.request(name, Trigger(TriggerKind.MANUAL))

    async def trigger_workflow(
        self, name: str, prompt: str = "", max_rounds: int | None = None, payload: Any = None
    ) -> tuple[str, RunStatus]:
        """Launch a run of workflow `name`; return its id and whether it started, queued or was
        dropped. The run is committed before this returns; while logs.db cannot be written, it
        is refused at once (`StoreUnavailable`) rather than left waiting."""
        if self._workflows is None:
            raise NerveError("the kernel is not running")
        self._refuse_while_stalled()
        return await self._workflows.launch(name, prompt, max_rounds, "cli", payload)

    async def trigger_workflow_once(
        self,
        name: str,
        key: str,
        prompt: str = "",
        max_rounds: int | None = None,
        payload: Any = None,
    ) -> tuple[str, RunStatus, bool]:
        """`trigger_workflow` with an idempotency key: the run launched with `key` if there is
        one (its status now, and True), else a new one committed with the key."""
        if self._workflows is None:
            raise NerveError("the kernel is not running")
        self._refuse_while_stalled()
        return await self._workflows.launch_once(name, key, prompt, max_rounds, "cli", payload)

    async def delay(
        self, kind: str, name: str, at_ms: int, run: tuple[str, int | None, Any] = ("", None, None)
    ) -> TimerInfo:
        """A delayed trigger of sense or workflow `name`, due at `at_ms`: committed before this
        returns (`nerve sense trigger --in/--at`, `nerve workflow trigger --in/--at`)."""
        self._refuse_while_stalled()
        if kind == "sense":
            if name not in self.config.senses:
                raise UnknownSense(f'no sense "{name}" in nerve.yaml')
            return await self.delayed.sense_at(name, at_ms)
        if name not in self.config.workflows:
            raise UnknownWorkflow(f'no workflow "{name}" in nerve.yaml')
        return await self.delayed.workflow_at(name, *run, at_ms)

    async def cancel_timer(self, timer_id: str) -> TimerInfo:
        self._refuse_while_stalled()
        return await self.delayed.cancel(timer_id)

    async def cancel_workflow(self, run_id: str) -> RunStatus:
        """Cancel a queued or started run."""
        if self._workflows is None:
            raise NerveError("the kernel is not running")
        self._refuse_while_stalled()
        return await self._workflows.cancel(run_id)

    def store_problem(self) -> str | None:
        """Why logs.db cannot be written now, in a sentence; None while it can."""
        return stall_problem(None if self._writer is None else self._writer.stall)

    def _refuse_while_stalled(self) -> None:
        problem = self.store_problem()
        if problem is not None:
            raise StoreUnavailable(f"{problem}; nothing was recorded, try again later")

    def _stall_ended(self, stall: Stall, seconds: float) -> None:
        """From the writer's thread: record the gap in logs.db itself."""
        assert self._writer is not None
        payload = {"since": stall.since_ms, "seconds": round(seconds, 3), "error": stall.error}
        payload["dropped"] = stall.dropped
        self._writer.post(AppendLogs([LogRow(KERNEL_SOURCE, LogType.STORE_STALL, payload)]))
        self._from_writer("@store.recovered", payload)

    def _stall_started(self, stall: Stall) -> None:
        """From the writer's thread: logs.db cannot be written."""
        self._from_writer("@store.stall", {"since": stall.since_ms, "error": stall.error})

    def _from_writer(self, name: str, payload: dict[str, Any]) -> None:
        """Publish a kernel signal from the writer's thread, on the kernel's loop."""
        signals, token = self.kernel_signals, self._token
        if signals is None or token is None:
            return
        with contextlib.suppress(anyio.RunFinishedError, RuntimeError):  # the loop has ended
            anyio.from_thread.run_sync(signals.publish, name, payload, token=token)

    @property
    def workflow_runners(self) -> dict[str, WorkflowRunner]:
        return {} if self._workflows is None else self._workflows.runners

    def state(self) -> KernelState:
        """One snapshot of everything the kernel runs: what `health`, `list-senses` (and the
        dashboard and metrics) render."""
        return snapshot(
            Parts(
                config=self.config,
                started_at=self._started_at,
                pool=self._pool,
                groups=self.groups,
                group_of=self._group_of,
                stats={} if self._router is None else self._router.stats,
                scheduler=self._scheduler,
                ledger=self.ledger,
                runners=self.workflow_runners,
                stall=None if self._writer is None else self._writer.stall,
                limits=self.limits,
                store_damage=self.store_check.damage,
            )
        )

    async def explain(
        self, what: str, name: str, *, why_not: bool = False, since: int | None = None
    ) -> dict[str, Any]:
        """`nerve explain`: a sense (`why_not`: why it has not computed since `since`, ms), a
        run or a signal, from what the kernel knows now and what logs.db holds. Raises
        `NotFound` for a name or id that names nothing."""
        if self._reader is None:
            raise NerveError("the kernel is not running")
        store = self._reader.store
        config = self.config
        if what == "sense":
            sense = next((s for s in self.state().senses if s.name == name), None)
            live = None if sense is None else live_sense(sense, self._scheduler, self.ledger)
            if live is not None:
                delayed = tuple(
                    (t.timer_id, t.due_ms) for t in self.delayed.timers.of("sense", name)
                )
                live = dataclasses.replace(live, delayed=delayed)
            return await anyio.to_thread.run_sync(
                lambda: explain_sense(config, store, name, live, why_not=why_not, since=since)
            )
        if what == "run":
            doc = await anyio.to_thread.run_sync(lambda: explain_run(store, name))
            for runner in self.workflow_runners.values():
                if name in runner.progress:
                    doc["progress"] = runner.progress[name].as_dict()
            return doc
        entries = self.ledger.for_signal(name)
        return await anyio.to_thread.run_sync(lambda: explain_signal(config, store, name, entries))

    def list_senses(self) -> list[SenseInfo]:
        return sense_infos(self.state())

    def health(self) -> HealthResponse:
        return render_health(self.state())

    # -- wiring ----------------------------------------------------------------------------------

    async def files_changed(self, changed: set[Path]) -> None:
        """Hot reload (see control/reload.py): `changed` holds paths relative to the
        workspace. With `reload: manual` they wait for `reload()`."""
        manual = self.config.reload is ReloadMode.MANUAL
        await self._reloads.files_changed(changed, manual=manual)

    def reload_plan(self) -> dict[str, Any]:
        """What `reload()` would do now (see control/reload_plan.py)."""
        running = running_now(
            self.config, self._scheduler, self.workflow_runners, self.options.drain_timeout_s
        )
        return self._reloads.plan(running)

    async def reload(self) -> dict[str, Any]:
        """Apply the workspace's nerve.yaml and the files changed since; return the plan."""
        plan = self.reload_plan()
        await self._reloads.apply_pending()
        return plan

    def reload_senses(self, senses: set[str]) -> list[str]:
        groups = sorted({self._group_of[s].name for s in senses if s in self._group_of})
        for name in groups:
            self.groups[name].reload()
        return groups

    def reload_workflows(self, workflows: set[str]) -> list[str]:
        drained = sorted(w for w in workflows if w in self.workflow_runners)
        for name in drained:
            self.workflow_runners[name].drain_and_respawn(self.options.drain_timeout_s)
        return drained

    def _request(self, sense: str, trigger: Trigger) -> Decision | None:
        return None if self._scheduler is None else self._scheduler.request(sense, trigger)

    async def _write(self, op: WriteOp) -> None:
        assert self._writer is not None
        await self._writer.write_async(op)

    async def _launch_delayed(
        self, workflow: str, prompt: str, max_rounds: int | None, payload: Any, cause: str
    ) -> tuple[str, RunStatus]:
        assert self._workflows is not None
        return await self._workflows.launch(workflow, prompt, max_rounds, "timer", payload, cause)

    async def _launch(
        self, sense: str, directive: WorkflowDirective, payload: Any, cause: str
    ) -> tuple[str, RunStatus]:
        assert self._workflows is not None
        return await self._workflows.launch(
            directive.workflow_name, directive.prompt, directive.max_rounds, sense, payload, cause
        )

    async def _execute(self, sense: str, trigger: Trigger) -> None:
        group = self._group_of[sense]
        timeout = self.config.senses[sense].timeout
        outcome = await group.compute(sense, trigger.kind, trigger.signal, timeout, trigger.id)
        with contained(f"sense {sense}: handling a compute's outcome"):
            self.ledger.computed(sense, trigger, outcome)
            if self.options.on_compute is not None:
                self.options.on_compute(sense, trigger, outcome)
            assert self._router is not None
            await self._router.handle(sense, trigger, outcome)
            if self._parts is not None:
                self.retries.after(self._parts, sense, trigger, outcome)

    def _decided(
        self, sense: str, trigger: Trigger, decision: Decision, replaced: Trigger | None
    ) -> None:
        """A scheduler decision, into the ledger (with when a held trigger computes). On the path
        of every tick: a thousand cron ticks at one instant go through it in one pass."""
        try:
            until = None
            waits = decision in (Decision.THROTTLED, Decision.HELD_BY_GRACE)
            schedule = None
            if waits and self._scheduler is not None:  # only these say until when
                schedule = self._scheduler.view(sense)
            if schedule is not None and self._scheduler is not None:
                wait = schedule.throttle_until or schedule.grace_until
                if wait is not None:
                    until = now_ms() + round((wait - self._scheduler.now()) * 1000)
            self.ledger.decided(sense, trigger, decision, replaced, until)
        except Exception:  # contained: a decision not noted must not stop the scheduler
            log.exception("sense %s: noting a decision failed unexpectedly; nerve goes on", sense)

    def _record(self, row: LogRow) -> None:
        if row.ts is None:
            row = dataclasses.replace(row, ts=now_ms())
        assert self._writer is not None
        self._writer.post(AppendLogs([row]))
        if row.type in _LIFECYCLE:  # the text log tells the daemon's story too
            fields = orjson.dumps(row.payload, default=str).decode()
            log.info("%s %s %s", row.type, row.source, fields)  # JSON, as `nerve logs` shows
        self._observe(row)

    def _observe(self, row: LogRow) -> None:
        """A row was recorded or committed: a kernel signal when it records an event, and show
        it to the observer, whose failure must never touch the kernel."""
        if self.kernel_signals is not None:
            with contained(f"a kernel signal from a {row.type} row"):
                self.kernel_signals.observe(row)
        if self.options.on_row is None:
            return
        try:
            self.options.on_row(row)
        except Exception:
            log.exception("the row observer failed on a %s row", row.type)

    def _on_sense_log(self, message: SenseLog, cause: str | None) -> None:
        payload = {"level": message.level, "message": message.message, "fields": message.fields}
        self._record(LogRow(message.sense, LogType.SENSE_LOG, payload, cause=cause))


def _on_signal(scheduler: ReflexScheduler, sense: str) -> Callable[[Signal], None]:
    def deliver(signal: Signal) -> None:
        scheduler.request(sense, Trigger(TriggerKind.SIGNAL, signal))

    return deliver


def _private_dir(path: Path) -> None:
    """`path` exists and only its owner may read it: what nerve keeps (logs, runs, what senses
    return) is nobody else's."""
    make_dirs(path, mode=0o700)  # durably: a power loss must not take back its name
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
