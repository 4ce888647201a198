"""The small typed values that cross nerve's parts: signals, trigger kinds and log row types."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Signal:
    """Published when a compute returns non-null and the return is not a workflow launch."""

    id: str
    source: str  # the sense that produced it; a signal is named after its sense
    payload: Any
    ts: int  # ms since the epoch, UTC


class TriggerKind(StrEnum):
    """Why a compute runs, as `ctx.trigger` tells it."""

    INTERVAL = "interval"
    SIGNAL = "signal"
    MANUAL = "manual"
    STARTUP = "startup"


class WorkerState(StrEnum):
    """A worker's state, in supervisor's words."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"  # exited unexpectedly; respawning after a delay
    FATAL = "FATAL"  # crash loop: respawn stopped
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
    SENSE_LOG = "sense.log"  # a sense's own `ctx.log(...)`
    SENSE_DECISION = "sense.decision"  # a scheduling decision that lost work (nerve explain)
    WORKFLOW_LOG = "workflow.log"  # a role's own `ctx.log(...)`, ref_id the run
