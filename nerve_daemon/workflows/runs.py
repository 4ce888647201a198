"""What a workflow runner works with: a run in memory, the parts every runner of a kernel shares,
run ids, the errors of launching and cancelling, and the rows observers see for a committed
write (the live view shows them as they commit)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nerve_core import LogType
from nerve_core.errors import NerveError
from nerve_store import (
    AppendMessage,
    CreateRun,
    LogReader,
    LogRow,
    LogWriter,
    Together,
    TransitionRun,
    WriteOp,
    now_ms,
)

from ..supervise.policy import GroupPolicy
from ..supervise.worker_pool import WorkerPool, WorkerProcess
from ..timing.limits import RateLimits


class UnknownWorkflow(NerveError):
    pass


class UnknownRun(NerveError):
    pass


def new_run_id() -> str:
    """Sortable by creation time, unique: `20261123T085500-3fa2c1d0`."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class RunnerParts:
    """What every workflow runner of a kernel shares."""

    root: Path
    pool: WorkerPool
    writer: LogWriter
    reader: LogReader  # reads off the loop, never through the writer's lock
    record: Callable[[LogRow], None]
    policy: GroupPolicy
    observe: Callable[[LogRow], None] | None = None
    limits: RateLimits = field(default_factory=RateLimits)  # ctx.limit(), shared by all workers


@dataclass
class Run:
    run_id: str
    prompt: str
    max_rounds: int
    worker: WorkerProcess | None = None


def committed_rows(workflow: str, op: WriteOp) -> Iterator[LogRow]:
    """The status and message rows `op` committed, as observers are shown them."""
    match op:
        case CreateRun() | TransitionRun():
            payload: dict[str, Any] = {"status": str(op.status), "reason": op.reason}
            cause = op.cause if isinstance(op, CreateRun) else None  # what launched the run
            yield LogRow(workflow, LogType.WORKFLOW_STATUS, payload, op.run_id, now_ms(), cause)
        case AppendMessage():
            payload = {"round": op.round, "role": op.role, "content": op.content}
            yield LogRow(workflow, LogType.WORKFLOW_MESSAGE, payload, op.run_id, now_ms())
        case Together():
            for each in op.ops:
                yield from committed_rows(workflow, each)
