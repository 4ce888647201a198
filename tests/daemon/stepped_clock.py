"""A clock that moves only when the test says so, for the scheduler and the timers."""

from __future__ import annotations

import anyio
from anyio import wait_all_tasks_blocked

EPOCH = 1_800_000_000.0 - 100.0  # wall = monotonic + EPOCH: monotonic 100 is a round wall time


class SteppedClock:
    def __init__(self, time: float = 100.0, epoch: float = EPOCH) -> None:
        self.time = time
        self.epoch = epoch  # the wall clock reads `time + epoch`
        self._moved = anyio.Event()

    def now(self) -> float:
        return self.time

    def wall(self) -> float:
        return self.time + self.epoch

    async def sleep_until(self, deadline: float) -> None:
        while self.time < deadline:
            await self._moved.wait()

    async def advance_to(self, time: float) -> None:
        self.time = time
        moved, self._moved = self._moved, anyio.Event()
        moved.set()
        await wait_all_tasks_blocked()

    async def set_wall(self, wall: float) -> None:
        """Set the wall clock (forward or back) without moving monotonic time."""
        self.epoch = wall - self.time
        moved, self._moved = self._moved, anyio.Event()
        moved.set()
        await wait_all_tasks_blocked()
