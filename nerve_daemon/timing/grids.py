"""Tick grids: where a timer reflex's ticks fall, in wall-clock seconds since the epoch.

- An interval grid is anchored on the epoch: ticks at `k × interval + phase`, the phase stable for
  the sense's name and under min(interval, 1 s) (500 senses at 1 s spread over the second instead
  of starting in one instant). A restarted daemon finds the same grid, and so the ticks it missed.
- A cron grid is the calendar's, in the reflex's time zone, as cronsim iterates it.

`jitter` delays each tick by up to the reflex's `jitter`, the same delay for the same tick (a
hash of the sense, the grid and the tick), so a restart or a reload does not move it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from nerve_core import NerveConfig, ReflexConfig, TriggerKind
from nerve_core._cron import cron_fields, zone

SPREAD_S = 1.0  # interval grids are spread over at most this much
MAX_CATCH_UP = 100  # `catch_up: all` computes at most this many missed ticks, the newest


class Grid(Protocol):
    @property
    def key(self) -> str:
        """The grid's identity in the marks (a changed grid is a new timer)."""
        ...

    @property
    def kind(self) -> TriggerKind: ...

    @property
    def period(self) -> float:
        """Seconds between ticks (for cron, the shortest possible gap)."""
        ...

    def next_after(self, wall: float) -> float:
        """The first tick strictly after `wall`."""
        ...

    def missed(self, since: float, until: float, limit: int) -> tuple[list[float], int]:
        """The ticks in (since, until]: the newest `limit` of them, oldest first, and how many
        there were in all (at least `limit` + 1 when more were left out)."""
        ...


@dataclass(frozen=True, slots=True)
class IntervalGrid:
    interval: float
    phase: float

    @property
    def kind(self) -> TriggerKind:
        return TriggerKind.INTERVAL

    @property
    def key(self) -> str:
        return f"interval {self.interval:g}"

    @property
    def period(self) -> float:
        return self.interval

    def next_after(self, wall: float) -> float:
        return (math.floor((wall - self.phase) / self.interval) + 1) * self.interval + self.phase

    def missed(self, since: float, until: float, limit: int) -> tuple[list[float], int]:
        first = math.floor((since - self.phase) / self.interval) + 1
        last = math.floor((until - self.phase) / self.interval)
        count = max(0, last - first + 1)
        newest = range(max(first, last - limit + 1), last + 1)
        return [k * self.interval + self.phase for k in newest], count


@dataclass(frozen=True, slots=True)
class CronGrid:
    expression: str
    timezone: str | None

    @property
    def kind(self) -> TriggerKind:
        return TriggerKind.CRON

    @property
    def key(self) -> str:
        return f"cron {cron_fields(self.expression)} {self.timezone or 'local'}"

    @property
    def period(self) -> float:
        return 60.0

    def next_after(self, wall: float) -> float:
        from cronsim import CronSim

        start = datetime.fromtimestamp(wall, zone(self.timezone))
        return next(CronSim(cron_fields(self.expression), start)).timestamp()

    def missed(self, since: float, until: float, limit: int) -> tuple[list[float], int]:
        from cronsim import CronSim

        # Backwards from a second past `until` (cronsim steps back before it looks): newest
        # first, `until` itself included when it is a tick.
        back = CronSim(
            cron_fields(self.expression),
            datetime.fromtimestamp(until + 1, zone(self.timezone)),
            reverse=True,
        )
        found: list[float] = []
        for tick in back:
            at = tick.timestamp()
            if at <= since or len(found) > limit:
                break
            if at <= until:
                found.append(at)
        return sorted(found[:limit]), len(found)


def phase(sense: str, interval: float) -> float:
    """A stable offset for `sense`'s grid, under min(interval, SPREAD_S)."""
    return zlib.crc32(sense.encode()) / 2**32 * min(interval, SPREAD_S)


def grids(reflex: ReflexConfig) -> list[Grid]:
    """The tick grids of a reflex (none for one that only listens to signals)."""
    found: list[Grid] = []
    if reflex.interval is not None:
        found.append(IntervalGrid(reflex.interval, phase(reflex.sense, reflex.interval)))
    if reflex.cron is not None:
        found.append(CronGrid(reflex.cron, reflex.timezone))
    return found


def timers_of(config: NerveConfig, sense: str) -> list[tuple[ReflexConfig, Grid]]:
    return [(reflex, grid) for reflex in config.reflexes_of(sense) for grid in grids(reflex)]


def jitter(sense: str, grid: Grid, tick: float, most: float) -> float:
    """How long tick `tick` of `sense`'s `grid` waits: the same for the same tick, under `most`."""
    if most <= 0:
        return 0.0
    seed = f"{sense} {grid.key} {round(tick * 1000)}".encode()
    return zlib.crc32(seed) / 2**32 * most


def upcoming(sense: str, reflex: ReflexConfig, grid: Grid, wall: float, count: int) -> list[float]:
    """The next `count` times `grid` fires for `sense` after `wall`, each tick with its jitter."""
    ticks, tick = [], wall
    for _ in range(count):
        tick = grid.next_after(tick)
        ticks.append(tick + jitter(sense, grid, tick, reflex.jitter))
    return ticks
