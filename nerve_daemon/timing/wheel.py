"""The wall-clock wheel: timers due at the same wall instant fire together.

A thousand cron reflexes on `0 * * * *` are due at one instant. Each sleeping on its own, they
wake as a thousand tasks spread over several turns of the event loop, between which the computes
the first ones asked for are already being sent and answered: the last fires a tenth of a second
late. The wheel keeps one sleep for all of them, toward the earliest instant (following the wall
clock as `sleep_until_wall` does), and at the instant calls every timer due in one pass, in the
order they were set, before anything else runs; each timer's task then goes on to find its next
instant.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import Callable

import anyio

from .clock import WALL_RECHECK_S, Clock

log = logging.getLogger("nerve")

Fire = Callable[[], None]


class WallWheel:
    def __init__(
        self,
        clock: Clock,
        around: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        """`around()` wraps each pass (the marks write what the timers noted as one)."""
        self._clock = clock
        self._around = around
        self._instants: list[float] = []  # a heap of the instants some timer waits for
        self._due: dict[float, list[tuple[Fire, anyio.Event]]] = {}
        self._sleep: anyio.CancelScope | None = None

    async def at(self, instant: float, fire: Fire) -> None:
        """Return once `fire()` has been called, when the wall clock reached `instant` (seconds
        since the epoch). Cancelled before then, `fire` is never called."""
        done = anyio.Event()
        entry = (fire, done)
        waiting = self._due.get(instant)
        if waiting is None:
            waiting = self._due[instant] = []
            heapq.heappush(self._instants, instant)
            if self._instants[0] == instant and self._sleep is not None:
                self._sleep.cancel()  # sooner than what the wheel sleeps toward
        waiting.append(entry)
        try:
            await done.wait()
        finally:
            if not done.is_set():
                waiting.remove(entry)

    async def run(self) -> None:
        """Fire what comes due, until cancelled."""
        clock = self._clock
        while True:
            while self._instants and not self._due.get(self._instants[0]):
                self._due.pop(heapq.heappop(self._instants), None)  # every timer left
            wall = clock.wall()
            remaining = self._instants[0] - wall if self._instants else WALL_RECHECK_S
            if remaining > 0:
                with anyio.CancelScope() as self._sleep:
                    await clock.sleep_until(clock.now() + min(remaining, WALL_RECHECK_S))
                self._sleep = None
                continue
            fired: list[anyio.Event] = []
            with self._around():
                while self._instants and self._instants[0] <= wall:
                    for fire, done in self._due.pop(heapq.heappop(self._instants), []):
                        try:
                            fire()
                        except Exception:  # one timer's failure must not stop the others
                            log.exception("a timer failed as it fired")
                        fired.append(done)
            for done in fired:  # their tasks go on once every timer due has fired
                done.set()
