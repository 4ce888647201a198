"""Admission: whether a new run of a workflow starts, queues or is dropped, decided at once.

One `Admission` per workflow holds its `concurrency` slots and its run queue. `admit()` decides
synchronously, before the caller awaits anything, so simultaneous launches (many socket clients,
senses in different groups) can never all see the same free slot: the slot is taken in the same
step that saw it free. A run holds its slot from admission (or from being claimed off the queue)
until `finish()`, whether or not a worker is running it yet: a run admitted while its worker
respawns waits for the new worker instead of being dropped.

Beyond `concurrency`, `overflow` decides: `drop` the new run; `queue` it (a full queue gives up
the oldest queued run, the newest, or the new one, as `evict` says); or `restart`: the oldest
running run gives its slot to the new one and is cancelled. The queue sits behind `RunQueue`
(enqueue, claim, remove), so a fleet-wide queue can take the place of the local one.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from nerve_core import Evict, Overflow, WorkflowConfig


class Queued(Protocol):
    @property
    def run_id(self) -> str: ...


Run = TypeVar("Run", bound=Queued)


class Verdict(StrEnum):
    START = "start"  # a slot is the run's now
    RESTART = "restart"  # a slot is the run's now, taken from `replaced`, which is cancelled
    QUEUE = "queue"  # it waits in the queue for a slot
    DROP = "drop"  # it is recorded dropped and never runs


@dataclass(frozen=True, slots=True)
class Admitted(Generic[Run]):
    verdict: Verdict
    reason: str | None = None  # why it was dropped
    evicted: Run | None = None  # the queued run pushed out to make room for this one
    replaced: str | None = None  # `restart`: the running run whose slot this one took


class RunQueue(Generic[Run]):
    """Runs waiting for a slot, oldest first."""

    def __init__(self) -> None:
        self._runs: collections.deque[Run] = collections.deque()

    def enqueue(self, run: Run) -> None:
        self._runs.append(run)

    def claim(self) -> Run | None:
        """The oldest queued run, taken off the queue; None when it is empty."""
        return self._runs.popleft() if self._runs else None

    def claim_newest(self) -> Run | None:
        return self._runs.pop() if self._runs else None

    def remove(self, run_id: str) -> Run | None:
        for run in self._runs:
            if run.run_id == run_id:
                self._runs.remove(run)
                return run
        return None

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> collections.abc.Iterator[Run]:
        return iter(list(self._runs))


class Admission(Generic[Run]):
    """The slots and queue of one workflow; see the module docstring."""

    def __init__(self, config: WorkflowConfig, queue: RunQueue[Run] | None = None) -> None:
        self.config = config
        self.queue: RunQueue[Run] = queue if queue is not None else RunQueue()
        self._holding: dict[str, None] = {}  # in the order they took their slots

    @property
    def running(self) -> int:
        """Runs holding a slot: started, waiting for a worker, or crashed and to be resumed."""
        return len(self._holding)

    def free(self) -> bool:
        return len(self._holding) < self.config.concurrency

    def admit(self, run: Run, *, closed: str | None = None) -> Admitted[Run]:
        """Decide for a new `run` now: start it (its slot is taken), queue it (evicting the
        oldest queued run when the queue is full) or drop it. `closed` says why nothing of this
        workflow can run at all (its worker is in a crash loop): the run is dropped."""
        if closed is not None:
            return Admitted(Verdict.DROP, closed)
        if self.free() and not len(self.queue):
            self._holding[run.run_id] = None
            return Admitted(Verdict.START)
        config = self.config
        if config.overflow is Overflow.RESTART and self._holding:
            oldest = next(iter(self._holding))
            del self._holding[oldest]
            self._holding[run.run_id] = None
            return Admitted(Verdict.RESTART, replaced=oldest)
        if config.overflow is not Overflow.QUEUE or config.max_queue == 0:
            reason = f"concurrency {config.concurrency} reached (overflow: {config.overflow})"
            return Admitted(Verdict.DROP, reason)
        evicted = None
        if len(self.queue) >= config.max_queue:
            if config.evict is Evict.REFUSE:
                reason = f"the queue is full (max_queue {config.max_queue}, evict: refuse)"
                return Admitted(Verdict.DROP, reason)
            newest = config.evict is Evict.NEWEST
            evicted = self.queue.claim_newest() if newest else self.queue.claim()
        self.queue.enqueue(run)
        return Admitted(Verdict.QUEUE, evicted=evicted)

    def hold(self, run_id: str) -> None:
        """`run_id` holds a slot whatever the limit (a run a previous kernel left started)."""
        self._holding[run_id] = None

    def claim(self) -> Run | None:
        """The next queued run, if a slot is free: it holds the slot from now on."""
        if not self.free():
            return None
        run = self.queue.claim()
        if run is not None:
            self._holding[run.run_id] = None
        return run

    def finish(self, run_id: str) -> None:
        """`run_id` ended (or never started): its slot is free."""
        self._holding.pop(run_id, None)

    def use(self, config: WorkflowConfig) -> list[Run]:
        """New limits; return the queued runs a shorter `max_queue` evicts, oldest first."""
        self.config = config
        evicted = []
        while len(self.queue) > config.max_queue:
            run = self.queue.claim()
            assert run is not None
            evicted.append(run)
        return evicted
