"""Pauses of the kernel itself: the process stopped (SIGSTOP, a debugger), the machine suspended,
the loop starved. Deadlines that ran out while the kernel was away are not the work's fault: a
compute whose worker answered during a 30 s SIGSTOP must not be called timed out when the
kernel continues. A task ticks every `TICK_S`; a gap past `SLACK_S` more is a pause, and
`paused_since(t)` says how much of the time since `t` the kernel was away (the gap it has not
ticked through yet included, so a deadline checked first after the resume sees it too)."""

from __future__ import annotations

import collections
from collections.abc import Callable

import anyio

TICK_S = 0.1
SLACK_S = 0.5  # a late tick up to this much is a busy loop, not a pause


class PauseWatch:
    def __init__(self, clock: Callable[[], float] = anyio.current_time) -> None:
        self._clock = clock
        self._last: float | None = None
        self._pauses: collections.deque[tuple[float, float]] = collections.deque(maxlen=64)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        self._last = self._clock()
        task_status.started()
        while True:
            await anyio.sleep(TICK_S)
            now = self._clock()
            if now - self._last > TICK_S + SLACK_S:
                self._pauses.append((self._last + TICK_S, now))
            self._last = now

    def paused_since(self, since: float) -> float:
        """Seconds of the time since `since` (the loop's clock) the kernel was away."""
        now = self._clock()
        away = sum(max(0.0, min(end, now) - max(start, since)) for start, end in self._pauses)
        if self._last is not None and now - self._last > TICK_S + SLACK_S:  # not ticked yet
            away += max(0.0, now - max(self._last + TICK_S, since))
        return away
