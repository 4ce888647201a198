"""The tick loops of timer reflexes (`interval:` and `cron:`), and what a start catches up.

An interval loop finds its epoch-anchored grid on the wall clock once, then keeps to it on the
monotonic clock: a wall clock set forward or back under a running daemon does not move its
ticks. A cron loop follows the wall clock (the calendar is the point), looking at it again at
least every minute: set forward past a tick, it fires once; set back, it never fires a tick it has
fired already. Cron ticks wait on one `WallWheel`, so the many due at one instant fire in one
pass. Either skips the ticks it missed while the loop was late (no burst); `catch_up`
is for ticks missed while the daemon was down, decided once at start (`startup_triggers`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable

import anyio
from anyio.abc import TaskGroup

from nerve_core import CatchUp, NerveConfig, ReflexConfig, TriggerKind
from nerve_core._durations import format_duration

from ..timing.clock import Clock
from ..timing.grids import MAX_CATCH_UP, CronGrid, Grid, IntervalGrid, jitter, timers_of
from ..timing.marks import MarkBuffer, tick_key
from ..timing.wheel import WallWheel

Request = Callable[[str, TriggerKind, float], None]  # (sense, kind, the tick's wall time)


class Ticks:
    def __init__(self, clock: Clock, marks: MarkBuffer, request: Request) -> None:
        self._clock = clock
        self._marks = marks
        self._request = request
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._wheel = WallWheel(clock, marks.together)
        self._wheel_turns = False
        self.next: dict[str, dict[str, float]] = {}  # sense → grid key → next tick (monotonic)

    def start(self, group: TaskGroup, config: NerveConfig, senses: Iterable[str]) -> None:
        if not self._wheel_turns:
            self._wheel_turns = True
            group.start_soon(self._wheel.run)
        for sense in senses:
            timers = timers_of(config, sense)
            if timers:
                group.start_soon(self._sense_ticks, sense, timers)

    def stop(self, sense: str) -> None:
        scope = self._scopes.pop(sense, None)
        if scope is not None:
            scope.cancel()
        self.next.pop(sense, None)

    async def _sense_ticks(self, sense: str, timers: list[tuple[ReflexConfig, Grid]]) -> None:
        with anyio.CancelScope() as scope:
            self._scopes[sense] = scope
            async with anyio.create_task_group() as loops:
                for reflex, grid in timers:
                    loops.start_soon(self._loop, sense, reflex, grid)

    async def _loop(self, sense: str, reflex: ReflexConfig, grid: Grid) -> None:
        clock, upcoming = self._clock, self.next.setdefault(sense, {})
        key = grid.key  # (a cron grid's key parses its expression: once, not at every tick)
        fire = functools.partial(self._fire, sense, grid.kind, key, grid.period)
        wall = clock.wall()
        tick = grid.next_after(wall)
        on_time = clock.now() + (tick - wall)  # where an interval tick falls on the monotonic clock
        while True:
            delay = jitter(sense, grid, tick, reflex.jitter)
            if isinstance(grid, IntervalGrid):  # on the monotonic clock from here on
                upcoming[key] = on_time + delay
                await clock.sleep_until(on_time + delay)
                fire(tick)
            else:
                upcoming[key] = clock.now() + (tick + delay - clock.wall())
                await self._wheel.at(tick + delay, functools.partial(fire, tick))
            if isinstance(grid, IntervalGrid):  # skip the ticks it was late for, not burst
                steps = max(1, math.ceil((clock.now() - on_time) / grid.interval))
                on_time += steps * grid.interval
                tick += steps * grid.interval
            else:
                tick = grid.next_after(max(tick, clock.wall()))

    def _fire(self, sense: str, kind: TriggerKind, key: str, period: float, tick: float) -> None:
        self._request(sense, kind, tick)
        self._marks.tick(sense, key, period, tick)


def startup_triggers(
    config: NerveConfig, sense: str, marks: dict[str, int], wall: float
) -> list[tuple[TriggerKind, float]]:
    """What `sense`'s timers compute at start (after its grace period), oldest first: an interval
    timer with no mark (a first start, a new reflex) computes once; with `catch_up` other than
    `none`, a timer that missed ticks while the daemon was down computes once for the newest of
    them (`last`) or once for each (`all`, at most MAX_CATCH_UP). The timers' wants merge into one
    list of distinct ticks."""
    wanted: dict[float, TriggerKind] = {}
    for reflex, grid in timers_of(config, sense):
        last = marks.get(tick_key(sense, grid.key))
        if last is None:
            if isinstance(grid, IntervalGrid):
                wanted.setdefault(wall, TriggerKind.STARTUP)
            continue
        if reflex.catch_up is CatchUp.NONE:
            continue
        limit = 1 if reflex.catch_up is CatchUp.LAST else MAX_CATCH_UP
        missed, _ = grid.missed(last / 1000, wall, limit)
        for tick in missed:
            wanted[tick] = TriggerKind.CATCH_UP
    ticks = sorted(wanted)
    if len(ticks) > 1 and all(
        reflex.catch_up is not CatchUp.ALL for reflex in config.reflexes_of(sense)
    ):
        ticks = ticks[-1:]  # no timer wants each: one compute for all
    return [(wanted[tick], tick) for tick in ticks]


def grid_keys(config: NerveConfig, sense: str) -> list[str]:
    return [grid.key for _, grid in timers_of(config, sense)]


def timers_rebuilt(old: NerveConfig, new: NerveConfig) -> set[str]:
    """Senses in both configs whose timers a reload rebuilds: their grids (interval, cron, time
    zone) or jitter changed. Other senses keep their tick loops untouched."""
    return {
        name
        for name in set(old.senses) & set(new.senses)
        if _timing(old, name) != _timing(new, name)
    }


def _timing(config: NerveConfig, sense: str) -> list[tuple[str, float]]:
    return [(grid.key, reflex.jitter) for reflex, grid in timers_of(config, sense)]


def describe(config: NerveConfig, sense: str) -> list[str]:
    """Each timer of `sense` in words: `30s`, `cron 0 9 * * mon-fri Europe/Paris`."""
    return [_describe(grid) for _, grid in timers_of(config, sense)]


def _describe(grid: Grid) -> str:
    if isinstance(grid, CronGrid):
        return f"cron {grid.expression}" + (f" {grid.timezone}" if grid.timezone else "")
    assert isinstance(grid, IntervalGrid)
    return format_duration(grid.interval)
