"""The clock the scheduler and the timers read: monotonic time to sleep on, wall time for grids
that live on the calendar (cron) or must be found again after a restart (interval grids anchored
on the epoch). Injected, so tests can step it."""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (what sleeps are measured in)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (what grids and marks are measured in)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the monotonic `deadline`."""
        ...


class AnyioClock:
    """The event loop's monotonic clock (the same clock as `time.monotonic()` on asyncio) and
    the system's wall clock."""

    def now(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)


WALL_RECHECK_S = 60.0  # a sleep toward a wall time looks at the wall clock again this often


async def sleep_until_wall(clock: Clock, due: float) -> None:
    """Sleep until the wall clock reads `due`, following it if it is set forward or back (or the
    machine slept) meanwhile, to within `WALL_RECHECK_S`."""
    while (remaining := due - clock.wall()) > 0:
        await clock.sleep_until(clock.now() + min(remaining, WALL_RECHECK_S))
