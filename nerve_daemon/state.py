"""The kernel's state as one snapshot, built in one place and rendered by many: `health`,
`list-senses`, and the dashboard and metrics to come. Nothing here keeps a counter of its own:
each figure is read from the part that owns it (the outcome router's per-sense figures and the
decision ledger's counts survive a reload, so the snapshot's do too).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from nerve_core import (
    HealthResponse,
    NerveConfig,
    ProgressInfo,
    SenseInfo,
    WorkerInfo,
    WorkerState,
)
from nerve_store import Stall

from .senses.group import SenseGroup
from .senses.ledger import Ledger, Reason
from .senses.outcomes import SenseStats
from .senses.scheduler import ReflexScheduler
from .supervise.progress import ProgressReport
from .supervise.worker_pool import FORK_SERVER, WorkerPool, WorkerProcess
from .timing.limits import RateLimits
from .workflows.runner import WorkflowRunner


@dataclass(frozen=True, slots=True)
class WorkerView:
    kind: Literal["fork-server", "sense-group", "workflow"]
    name: str
    pid: int | None
    state: str
    restarts: int
    memory_limit: str | None = None  # how its memory limit is enforced (cgroup v1/v2, poll)
    memory_limit_why: str | None = None  # why it is polled, when it is


@dataclass(frozen=True, slots=True)
class SenseView:
    name: str
    group: str
    worker_pid: int | None
    state: str  # the group's worker state, or LOAD_ERROR for a sense that failed to load
    stats: SenseStats
    decisions: Mapping[Reason, int] = field(default_factory=dict)  # the ledger's counts
    progress: ProgressReport | None = None  # what its compute in flight last said
    rate_limited: tuple[str, int] | None = None  # ctx.limit() name it waits for, until (ms)


@dataclass(frozen=True, slots=True)
class WorkflowView:
    name: str
    running: int  # runs holding a slot
    queued: int
    concurrency: int
    progress: Mapping[str, ProgressReport] = field(default_factory=dict)  # run → its last report
    stalled: Mapping[str, float] = field(default_factory=dict)  # run → seconds with no message


@dataclass(frozen=True, slots=True)
class KernelState:
    pid: int
    uptime_s: float
    version: str
    senses: tuple[SenseView, ...]
    workers: tuple[WorkerView, ...]
    workflows: tuple[WorkflowView, ...]
    store_problem: str | None  # why logs.db cannot be written now, if it cannot
    store_damage: str | None  # what the check after the start found damaged in logs.db
    rate_limits: Mapping[str, Mapping[str, object]]  # ctx.limit() names in use: RateLimits


@dataclass(frozen=True, slots=True)
class Parts:
    """The parts a snapshot reads, as the kernel holds them now."""

    config: NerveConfig
    started_at: float  # time.monotonic() at the kernel's start
    pool: WorkerPool | None
    groups: Mapping[str, SenseGroup]
    group_of: Mapping[str, SenseGroup]
    stats: Mapping[str, SenseStats]
    scheduler: ReflexScheduler | None
    ledger: Ledger | None
    runners: Mapping[str, WorkflowRunner]
    stall: Stall | None
    limits: RateLimits | None = None
    store_damage: str | None = None


def snapshot(parts: Parts) -> KernelState:
    workers: list[WorkerView] = []
    if parts.pool is not None:
        pool = parts.pool
        workers.append(
            WorkerView(FORK_SERVER, FORK_SERVER, pool.server_pid, str(pool.state), pool.restarts)
        )
    for name, each in parts.groups.items():
        workers.append(
            WorkerView(
                "sense-group",
                name,
                _pid(each.worker),
                str(each.state),
                each.restarts,
                each.memory_enforced_by,
                each.memory_limit_why,
            )
        )
    for name, runner in parts.runners.items():
        workers.append(
            WorkerView("workflow", name, _pid(runner.worker), str(runner.state), runner.restarts)
        )
    senses = []
    for name, sense in parts.config.senses.items():
        group = parts.group_of.get(name)
        decisions = {} if parts.ledger is None else parts.ledger.counts(name)
        senses.append(
            SenseView(
                name=name,
                group=sense.group,
                worker_pid=None if group is None else _pid(group.worker),
                state=_sense_state(group, name),
                stats=parts.stats.get(name) or SenseStats(),
                decisions=decisions,
                progress=None if group is None else group.progress.get(name),
                rate_limited=None if parts.limits is None else parts.limits.waiting_of(name),
            )
        )
    workflows = tuple(
        WorkflowView(
            name,
            runner.running,
            runner.queued,
            runner.config.concurrency,
            dict(runner.progress),
            runner.stalls.stalled(),
        )
        for name, runner in parts.runners.items()
    )
    return KernelState(
        pid=os.getpid(),
        uptime_s=round(time.monotonic() - parts.started_at, 3),
        version=_version(),
        senses=tuple(senses),
        workers=tuple(workers),
        workflows=workflows,
        store_problem=stall_problem(parts.stall),
        store_damage=parts.store_damage,
        rate_limits={} if parts.limits is None else parts.limits.describe(),
    )


def render_health(state: KernelState) -> HealthResponse:
    return HealthResponse(
        pid=state.pid,
        uptime_s=state.uptime_s,
        version=state.version,
        senses=len(state.senses),
        sense_names=[sense.name for sense in state.senses],
        workers=[
            WorkerInfo(
                kind=worker.kind,
                name=worker.name,
                pid=worker.pid,
                state=worker.state,
                restarts=worker.restarts,
                memory_limit=worker.memory_limit,
                memory_limit_why=worker.memory_limit_why,
            )
            for worker in state.workers
        ],
        store_error=state.store_problem,
        store_damage=state.store_damage,
        run_progress={
            run_id: _progress_info(report)
            for workflow in state.workflows
            for run_id, report in workflow.progress.items()
        },
        stalled_runs={
            run_id: silent
            for workflow in state.workflows
            for run_id, silent in workflow.stalled.items()
        },
        rate_limits={name: dict(each) for name, each in state.rate_limits.items()},
    )


def sense_infos(state: KernelState) -> list[SenseInfo]:
    return [
        SenseInfo(
            name=sense.name,
            group=sense.group,
            worker_pid=sense.worker_pid,
            state=sense.state,
            last_run_at=sense.stats.last_run_at,
            last_status=sense.stats.last_status,
            last_duration_ms=sense.stats.last_duration_ms,
            computes=sense.stats.computes,
            errors=sense.stats.errors,
            progress=None if sense.progress is None else _progress_info(sense.progress),
        )
        for sense in state.senses
    ]


def _progress_info(report: ProgressReport) -> ProgressInfo:
    return ProgressInfo(fraction=report.fraction, note=report.note, at=report.at)


def stall_problem(stall: Stall | None) -> str | None:
    """Why logs.db cannot be written now, in a sentence; None while it can."""
    if stall is None:
        return None
    seconds = time.time() - stall.since_ms / 1000
    problem = f"logs.db cannot be written: {stall.error} (for {seconds:.0f}s"
    problem += f", {stall.held} writes held"
    if stall.dropped:
        problem += f", {stall.dropped} log rows dropped"
    return problem + ")"


def _pid(worker: WorkerProcess | None) -> int | None:
    return worker.pid if worker is not None and worker.alive else None


def _sense_state(group: SenseGroup | None, sense: str) -> str:
    if group is None:
        return "STOPPED"
    if sense in group.load_errors and group.state is WorkerState.RUNNING:
        return "LOAD_ERROR"  # a sense that failed to load says so; its group mates run on
    if group.parking.holds(sense) and group.state is not WorkerState.FATAL:
        return "PARKED"  # it kept killing the worker: set aside, its group mates run on
    return str(group.state)


@functools.cache
def _version() -> str:  # reading package metadata costs about 0.2 ms: once is enough
    try:
        return version("nerve")
    except PackageNotFoundError:
        return "unknown"
