"""Rate limits for outside calls, shared by every worker: `ctx.limit("github", rate="30/m")`.

The kernel keeps, for each name, the instants it granted in the last window: a sliding-window
log. A call is granted the first instant at which fewer than `count` grants lie in the window of
`period` before it, so no window of that length, wherever it falls, holds more than `count`
grants. A token bucket of the same rate lets 2 × count - 1 calls through in one window (a full
bucket, then its refill); a quota is usually counted the strict way, so nerve counts that way too.

A grant is a reservation: the caller is told the instant (on the machine's monotonic clock, the
same in every process) and sleeps until it. Grants follow the order requests reach the kernel.
The windows live in the kernel's memory: a restarted kernel starts them empty.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nerve_core import MAX_RATE_COUNT, LimitGrant, LimitRequest
from nerve_core._durations import MAX_DURATION_S, format_duration

MAX_NAMES = 10_000  # limit names kept at once: a worker inventing names cannot grow the kernel
MAX_NAME_CHARS = 200
MAX_WAITERS = 10_000  # who waits is kept for this many callers at most (past grants swept first)


@dataclass
class _Window:
    count: int
    period_s: float
    grants: collections.deque[float]  # granted instants in the window or ahead, oldest first


class RateLimits:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._windows: dict[str, _Window] = {}
        self._waiting: dict[str, tuple[str, float]] = {}  # who asked → (name, granted instant)

    def grant(self, request: LimitRequest) -> LimitGrant:
        """The kernel's answer to a worker's `ctx.limit()`. A request no worker of ours would
        send (a bad name or rate) gets an error instead: the caller raises it."""
        problem = _problem(request)
        if problem is None and request.name not in self._windows:
            if len(self._windows) >= MAX_NAMES:  # full: make room, once, from the idle names
                self._forget_idle()
            if len(self._windows) >= MAX_NAMES:
                problem = f"more than {MAX_NAMES} rate limit names are in use"
        if problem is not None:
            return LimitGrant(request.id, 0.0, problem)
        at = self.reserve(request.name, request.count, request.period_s)
        if request.of and at > self._clock():
            if len(self._waiting) >= MAX_WAITERS:
                self._sweep()
            if len(self._waiting) < MAX_WAITERS:
                self._waiting[request.of] = (request.name, at)
        return LimitGrant(request.id, at)

    def waiting_of(self, of: str) -> tuple[str, int] | None:
        """The limit `of` (a sense or a run) waits for now, and until when (wall clock, ms)."""
        found = self._waiting.get(of)
        now = self._clock()
        if found is None or found[1] <= now:
            self._waiting.pop(of, None)
            return None
        name, at = found
        return name, round((self._wall() + at - now) * 1000)

    def _sweep(self) -> None:
        now = self._clock()
        for of in [of for of, (_, at) in self._waiting.items() if at <= now]:
            del self._waiting[of]

    def reserve(self, name: str, count: int, period_s: float) -> float:
        """The first instant, now or later, at which a call under `name` keeps at most `count`
        in any `period_s`; recorded as granted. The latest rate asked for a name is its rate."""
        now = self._clock()
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = _Window(count, period_s, collections.deque())
        window.count, window.period_s = count, period_s
        grants = window.grants
        while grants and grants[0] <= now - period_s:
            grants.popleft()  # left the window: it constrains no call from now on
        at = _next_free(grants, count, period_s, now)
        grants.append(at)
        return at

    def describe(self) -> dict[str, dict[str, object]]:
        """Each name in use: its rate, the calls gone in the window now, the seconds until the
        next call could go (0 when one could go at once), and the callers waiting for theirs."""
        now = self._clock()
        result: dict[str, dict[str, object]] = {}
        for name, window in sorted(self._windows.items()):
            kept = [at for at in window.grants if at > now - window.period_s]
            free_at = _next_free(kept, window.count, window.period_s, now)
            result[name] = {
                "rate": f"{window.count}/{format_duration(window.period_s)}",
                "inWindow": sum(1 for at in kept if at <= now),
                "nextFreeInS": round(max(0.0, free_at - now), 3),
                "waiting": sum(1 for at in kept if at > now),
            }
        return result

    def _forget_idle(self) -> None:
        """Drop the names whose every grant has left its window: they constrain nothing."""
        now = self._clock()
        for name in [
            name
            for name, window in self._windows.items()
            if not window.grants or window.grants[-1] <= now - window.period_s
        ]:
            del self._windows[name]


def _next_free(grants: Sequence[float], count: int, period: float, now: float) -> float:
    """The first instant from `now` at which one more grant keeps `count` per `period`, after
    `grants` (those still in the window or ahead, oldest first), in request order."""
    at = now
    if len(grants) >= count:
        at = max(at, grants[-count] + period)
    if grants:
        at = max(at, grants[-1])  # in request order, even across a change of rate
    return at


def _problem(request: LimitRequest) -> str | None:
    name, count, period = request.name, request.count, request.period_s
    if not name or len(name) > MAX_NAME_CHARS:
        return f"a rate limit name has 1 to {MAX_NAME_CHARS} characters"
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RATE_COUNT:
        return f"a rate's count is a whole number from 1 to {MAX_RATE_COUNT}, got {count!r}"
    if (
        isinstance(period, bool)
        or not isinstance(period, int | float)
        or not math.isfinite(period)
        or not 0 < period <= MAX_DURATION_S
    ):
        return f"a rate's period is a duration longer than zero, got {period!r}"
    return None
