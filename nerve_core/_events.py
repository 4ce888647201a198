"""The small typed values that cross nerve's parts: signals, trigger kinds and log row types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Signal:
    """Published when a compute returns non-null and the return is not a workflow launch."""

    id: str
    source: str  # the sense that produced it (a signal is named after its sense), or "@…"
    payload: Any
    ts: int  # ms since the epoch, UTC


# The kernel's own events, published as signals under names no sense can have (a sense name never
# starts with "@"), so a reflex can schedule a sense on them: `on: ["@run.failed"]`.
KERNEL_SIGNALS: dict[str, str] = {
    "@worker.crash": "a worker (a sense group's or a workflow's) exited unexpectedly",
    "@worker.crash_loop": "a worker crashed too often and is no longer respawned (FATAL)",
    "@worker.limit": "a worker was killed for going over a resource limit",
    "@fork_server.lost": "the fork server died; its workers are replaced with it",
    "@compute.error": "a compute raised",
    "@compute.timeout": "a compute passed its timeout",
    "@compute.crash": "a compute's worker died under it",
    "@sense.parked": "a sense that kept killing its group's worker was parked for a cool-down",
    "@run.failed": "a workflow run failed",
    "@run.dropped": "a workflow run was dropped (concurrency reached, crash loop, removed)",
    "@run.evicted": "a queued workflow run was pushed out of a full queue",
    "@run.interrupted": "a run still going when its reloaded workflow's drain timed out",
    "@run.stalled": "a started run committed no message for its workflow's stall_after",
    "@store.stall": "logs.db cannot be written (a full disk, say); writes are held",
    "@store.recovered": "logs.db is writable again; what was held has committed",
    "@store.damaged": "the check after a start found damaged pages in logs.db",
}


class TriggerKind(StrEnum):
    """Why a compute runs, as `ctx.trigger` tells it."""

    INTERVAL = "interval"
    SIGNAL = "signal"
    MANUAL = "manual"
    STARTUP = "startup"
    CRON = "cron"  # a tick of a `cron:` reflex
    CATCH_UP = "catch_up"  # for ticks missed while the daemon was down (`catch_up:`)
    DELAYED = "delayed"  # a delayed trigger (`nerve sense trigger --in/--at`) came due


class WorkerState(StrEnum):
    """A worker's state, in supervisor's words."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"  # exited unexpectedly; respawning after a delay
    FATAL = "FATAL"  # crash loop: respawn stopped
    IDLE = "IDLE"  # a workflow's worker stopped for want of runs: the next run starts one
    STOPPED = "STOPPED"


class LogType(StrEnum):
    """The closed set of `logs.type` values; writers and readers use these, never literals."""

    SIGNAL = "signal"
    COMPUTE_ERROR = "compute.error"
    COMPUTE_TIMEOUT = "compute.timeout"
    COMPUTE_CRASH = "compute.crash"
    DIRECTIVE_INVALID = "directive.invalid"
    WORKFLOW_LAUNCH = "workflow.launch"
    WORKFLOW_MESSAGE = "workflow.message"
    WORKFLOW_STATUS = "workflow.status"
    WORKER_START = "worker.start"
    WORKER_EXIT = "worker.exit"
    WORKER_CRASH_LOOP = "worker.crash_loop"
    WORKER_LIMIT = "worker.limit"
    CONFIG_RELOAD = "config.reload"
    CONFIG_ERROR = "config.error"
    KERNEL_START = "kernel.start"
    KERNEL_STOP = "kernel.stop"
    STORE_ARCHIVE = "store.archive"  # old log rows moved to data/archive/logs/
    STORE_STALL = "store.stall"  # logs.db could not be written for a while (e.g. disk full)
    STORE_DAMAGED = "store.damaged"  # the check after a start found damaged pages in logs.db
    SENSE_LOG = "sense.log"  # a sense's own `ctx.log(...)`
    SENSE_DECISION = "sense.decision"  # a scheduling decision that lost work (nerve explain)
    SENSE_PARKED = "sense.parked"  # a sense that kept killing its worker is set aside a while
    SENSE_UNPARKED = "sense.unparked"  # it computes again: its cool-down ended or its code changed
    WORKFLOW_LOG = "workflow.log"  # a role's own `ctx.log(...)`, ref_id the run
    WORKFLOW_STALL = "workflow.stall"  # a run silent for its stall_after, ref_id the run
