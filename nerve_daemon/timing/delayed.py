"""Delayed triggers (`nerve sense trigger --in 10m`, `--at`, and the same for workflows): durable
from the commit that acknowledges them until they fire or are cancelled.

They wait in a heap, soonest first, for one task that sleeps toward the soonest on the wall clock
(following it if it is set forward or back). One that came due while the daemon was down fires
just after the next start, in due order. Firing is the kernel's (`fire`): a sense's trigger goes
to its scheduler; a workflow's run is created with the timer's id as its cause, so a restart that
finds a pending timer whose run exists marks it fired instead of launching it twice.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from nerve_core.errors import NerveError
from nerve_store import AddTimer, EndTimer, TimerRecord, WriteOp, now_ms

from ..containment import contained
from .clock import Clock, sleep_until_wall

MAX_PENDING = 100_000  # delayed triggers waiting at once; beyond, a new one is refused

Write = Callable[[WriteOp], Awaitable[None]]
# A timer came due: what became of it ("fired" or "failed") and the outcome (a run, a decision,
# or why it failed).
Fire = Callable[[TimerRecord], Awaitable[tuple[str, str]]]


class TooManyTimers(NerveError):
    pass


class UnknownTimer(NerveError):
    pass


class DelayedTimers:
    def __init__(self, clock: Clock, write: Write, fire: Fire) -> None:
        self._clock = clock
        self._write = write
        self._fire = fire
        self._heap: list[tuple[int, str]] = []  # (due ms, timer id)
        self._pending: dict[str, TimerRecord] = {}
        self._changed = anyio.Event()
        self._waiting: anyio.CancelScope | None = None
        self._waiting_for: int | None = None  # the due time the run loop sleeps toward
        self.fired = 0

    def load(self, records: list[TimerRecord]) -> None:
        """Take the pending timers a previous kernel left (read from logs.db at start)."""
        for record in records:
            self._keep(record)

    def pending(self) -> list[TimerRecord]:
        return [self._pending[timer_id] for _, timer_id in sorted(self._heap)]

    def of(self, kind: str, target: str) -> list[TimerRecord]:
        return [timer for timer in self.pending() if (timer.kind, timer.target) == (kind, target)]

    async def add(
        self, timer_id: str, kind: str, target: str, due_ms: int, request: Any = None
    ) -> TimerRecord:
        """Commit a delayed trigger, then keep it: once this returns, it survives a kill."""
        if len(self._pending) >= MAX_PENDING:
            raise TooManyTimers(
                f"{MAX_PENDING} delayed triggers are pending already: cancel some "
                "(`nerve timers list`, `nerve timers cancel <id>`) or wait for them"
            )
        record = TimerRecord(
            timer_id, kind, target, due_ms, now_ms(), request, "pending", None, None
        )
        await self._write(AddTimer(timer_id, kind, target, due_ms, record.created_ms, request))
        self._keep(record)
        return record

    async def cancel(self, timer_id: str) -> TimerRecord:
        record = self._pending.get(timer_id)
        if record is None:
            raise UnknownTimer(f'no pending delayed trigger "{timer_id}" (see `nerve timers list`)')
        await self._write(EndTimer(timer_id, "cancelled", now_ms(), "cancelled"))
        self._drop(timer_id)
        return record

    async def run(self) -> None:
        while True:
            if not self._heap:
                await self._changed.wait()
                self._changed = anyio.Event()
                continue
            due, timer_id = self._heap[0]
            with anyio.CancelScope() as waiting:
                self._waiting, self._waiting_for = waiting, due
                await sleep_until_wall(self._clock, due / 1000)
            self._waiting = self._waiting_for = None
            if waiting.cancelled_caught or not self._heap or self._heap[0] != (due, timer_id):
                continue  # a sooner one came, or this one was cancelled: look again
            heapq.heappop(self._heap)
            record = self._pending.pop(timer_id)
            status, outcome = "failed", "the trigger failed unexpectedly (see logs/nerve.log)"
            with contained(f"the delayed trigger {timer_id}"):
                status, outcome = await self._fire(record)
            with contained(f"recording the delayed trigger {timer_id} {status}"):
                await self._write(EndTimer(timer_id, status, now_ms(), outcome))
            self.fired += 1

    def _keep(self, record: TimerRecord) -> None:
        self._pending[record.timer_id] = record
        heapq.heappush(self._heap, (record.due_ms, record.timer_id))
        self._changed.set()
        if self._waiting is not None and record.due_ms < (self._waiting_for or 0):
            self._waiting.cancel()  # sooner than the one the loop sleeps toward

    def _drop(self, timer_id: str) -> None:
        """Forget a cancelled timer (the loop, if it sleeps toward it, looks again)."""
        self._pending.pop(timer_id, None)
        self._heap = [(due, other) for due, other in self._heap if other != timer_id]
        heapq.heapify(self._heap)
        if self._waiting is not None:
            self._waiting.cancel()
