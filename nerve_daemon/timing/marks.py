"""Marks: what a restart needs to know about time that passed. `tick <sense> <grid>` is the last
tick a timer fired (so a restart knows which ticks it missed, for `catch_up`), and
`start <sense>` the last compute start of a throttled sense (so a restart does not compute it
inside its throttle window).

A mark that matters at the second is written at once: a throttle start, and a tick of a timer 10 s
apart or more. Ticks of faster timers are kept in memory and written together once a second (a
kill loses at most that second: those ticks count as missed, and `catch_up: last` computes once).
Timers firing together (`together()`) write their urgent marks as one row set at the end: a
thousand posts to the writer's thread, each waking it, would make the last timer late.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import anyio

from nerve_store import SetMarks

URGENT_PERIOD_S = 10.0
FLUSH_EVERY_S = 1.0


def tick_key(sense: str, grid_key: str) -> str:
    return f"tick {sense} {grid_key}"


def start_key(sense: str) -> str:
    return f"start {sense}"


class MarkBuffer:
    def __init__(self, post: Callable[[SetMarks], None], marks: dict[str, int]) -> None:
        self._post = post
        self.known = dict(marks)  # as read at start, then as noted
        self._dirty: dict[str, int] = {}
        self._together: dict[str, int] | None = None  # urgent marks held by `together()`

    def tick(self, sense: str, grid_key: str, period: float, wall: float) -> None:
        self._note(tick_key(sense, grid_key), wall, urgent=period >= URGENT_PERIOD_S)

    def start(self, sense: str, wall: float) -> None:
        self._note(start_key(sense), wall, urgent=True)

    def _note(self, key: str, wall: float, *, urgent: bool) -> None:
        at = round(wall * 1000)
        self.known[key] = at
        if urgent and self._together is not None:
            self._together[key] = at
        elif urgent:
            self._post(SetMarks({key: at}))
        else:
            self._dirty[key] = at

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Urgent marks noted inside are written as one, when it ends."""
        if self._together is not None:  # already inside: the outer one writes them
            yield
            return
        self._together = {}
        try:
            yield
        finally:
            held, self._together = self._together, None
            if held:
                self._post(SetMarks(held))

    def flush(self) -> None:
        if self._dirty:
            dirty, self._dirty = self._dirty, {}
            self._post(SetMarks(dirty))

    async def run(self) -> None:
        try:
            while True:
                await anyio.sleep(FLUSH_EVERY_S)
                self.flush()
        finally:
            self.flush()
