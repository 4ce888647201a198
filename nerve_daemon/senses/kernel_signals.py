"""The kernel's own events as signals: `@worker.crash`, `@compute.error`, `@run.failed`, ... (the
names and what each means are `nerve_core.KERNEL_SIGNALS`).

Only signals some reflex listens to are made (nobody pays for the others), each from the row that
records the event, as the kernel observes it: the signal's payload
is the row's, with `source` (the sense, workflow or kernel part the row is about) and `run` for a
run's; a `signal` row records it (`source` the `@` name, `cause` the trigger of the compute the
event is about); and the bus carries it to the reflexes that list it in `on`, as any signal.

Feedback terminates: an event about a compute that ran for a kernel signal (its trigger id starts
with `k-`), or about a run such a compute launched, is not signalled again. A sense that fails on
every `@compute.error` fails once per original error, not forever. (A worker that dies on every
`@worker.crash` is stopped by the crash loop rule: five exits within a minute.) The kernel never
waits on its signals' listeners: when the bus is full, a kernel signal is dropped and counted.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from nerve_core import LogType, Signal
from nerve_store import LogRow, now_ms

from .scheduler import for_kernel_signal

log = logging.getLogger("nerve")

_REMEMBERED_RUNS = 10_000  # runs whose launching trigger is kept, to judge their failures
_TRACEBACK_CHARS = 2_000


class KernelSignals:
    def __init__(
        self,
        offer: Callable[[Signal], bool],
        record: Callable[[LogRow], None],
        new_id: Callable[[], str],
        listened: Callable[[str], bool],
    ) -> None:
        self._offer = offer
        self._listened = listened
        self._record = record
        self._new_id = new_id
        self._run_causes: OrderedDict[str, str | None] = OrderedDict()
        self.published = 0
        self.suppressed = 0  # about a compute or run for a kernel signal: not signalled again
        self.dropped = 0  # the bus was full

    def observe(self, row: LogRow) -> None:
        """Publish the kernel signal `row` records, if it records one."""
        if row.type == LogType.WORKFLOW_STATUS and row.ref_id is not None:
            self._remember(row)
        event = _event(row)
        if event is None:
            return
        name, payload = event
        if not self._listened(name):
            return
        cause = row.cause if row.cause is not None else self._run_causes.get(row.ref_id or "")
        if for_kernel_signal(cause):
            self.suppressed += 1
            return
        self.publish(name, payload, cause=row.cause, parent=row.parent)

    def publish(
        self,
        name: str,
        payload: dict[str, Any],
        cause: str | None = None,
        parent: str | None = None,
    ) -> None:
        """Record and offer the kernel signal `name` if a reflex listens to it; `cause` and
        `parent` are the lineage of the compute it is about (its trigger, and the signal that
        trigger was for)."""
        if not self._listened(name):
            return
        signal = Signal(self._new_id(), name, payload, now_ms())
        row = LogRow(name, LogType.SIGNAL, payload, signal.id, signal.ts, cause, parent)
        self._record(row)
        if self._offer(signal):
            self.published += 1
        else:
            self.dropped += 1
            log.warning("the signal bus is full: the kernel signal %s was dropped", name)

    def _remember(self, row: LogRow) -> None:
        assert row.ref_id is not None
        if row.cause is not None or row.ref_id not in self._run_causes:
            self._run_causes[row.ref_id] = row.cause
            self._run_causes.move_to_end(row.ref_id)
            while len(self._run_causes) > _REMEMBERED_RUNS:
                self._run_causes.popitem(last=False)


_EVENTS = frozenset(
    {
        LogType.WORKER_EXIT,
        LogType.WORKER_CRASH_LOOP,
        LogType.WORKER_LIMIT,
        LogType.COMPUTE_ERROR,
        LogType.COMPUTE_TIMEOUT,
        LogType.COMPUTE_CRASH,
        LogType.WORKFLOW_STATUS,
        LogType.WORKFLOW_STALL,
        LogType.SENSE_PARKED,
        LogType.STORE_DAMAGED,
    }
)


def _event(row: LogRow) -> tuple[str, dict[str, Any]] | None:
    """The kernel signal a row records, with its payload; None for every other row."""
    if row.type not in _EVENTS:  # most rows (signals, messages, logs): nothing to copy
        return None
    payload: dict[str, Any] = dict(row.payload) if isinstance(row.payload, dict) else {}
    match row.type:
        case LogType.WORKER_EXIT if payload.get("reason") in ("crash", "start_failed"):
            name = (
                "@fork_server.lost" if payload.get("worker") == "fork-server" else "@worker.crash"
            )
            return name, payload
        case LogType.WORKER_CRASH_LOOP:
            return "@worker.crash_loop", payload
        case LogType.WORKER_LIMIT:
            return "@worker.limit", payload
        case LogType.COMPUTE_ERROR | LogType.COMPUTE_TIMEOUT | LogType.COMPUTE_CRASH:
            if isinstance(payload.get("traceback"), str):
                payload["traceback"] = payload["traceback"][-_TRACEBACK_CHARS:]
            return "@" + str(row.type), {"source": row.source, **payload}
        case LogType.WORKFLOW_STATUS:
            status, reason = payload.get("status"), payload.get("reason") or ""
            about = {"source": row.source, "run": row.ref_id, **payload}
            if status == "failed":
                return "@run.failed", about
            if status == "dropped":
                evicted = reason.startswith("evicted")
                return ("@run.evicted" if evicted else "@run.dropped"), about
            if status == "interrupted":
                return "@run.interrupted", about
        case LogType.WORKFLOW_STALL:
            return "@run.stalled", {"source": row.source, "run": row.ref_id, **payload}
        case LogType.SENSE_PARKED:
            return "@sense.parked", {"source": row.source, **payload}
        case LogType.STORE_DAMAGED:
            return "@store.damaged", payload
    return None
