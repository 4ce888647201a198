"""Marks: what a restart needs to know about time that passed. `tick <sense> <grid>` is the last
tick a timer fired (so a restart knows which ticks it missed, for `catch_up`), and
`start <sense>` the last compute start of a throttled sense (so a restart does not compute it
inside its throttle window).

A mark that matters at the second is written at once: a throttle start, and a tick of a timer 10 s
apart or more. Ticks of faster timers are kept in memory and written together once a second (a
kill loses at most that second: those ticks count as missed, and `catch_up: last` computes once).
"""

from __future__ import annotations

from collections.abc import Callable

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

    def tick(self, sense: str, grid_key: str, period: float, wall: float) -> None:
        self._note(tick_key(sense, grid_key), wall, urgent=period >= URGENT_PERIOD_S)

    def start(self, sense: str, wall: float) -> None:
        self._note(start_key(sense), wall, urgent=True)

    def _note(self, key: str, wall: float, *, urgent: bool) -> None:
        at = round(wall * 1000)
        self.known[key] = at
        if urgent:
            self._post(SetMarks({key: at}))
        else:
            self._dirty[key] = at

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
