"""ReflexScheduler: decides when each sense computes (DESIGN.md, "Scheduling semantics").

- Interval reflexes fire first `grace_period` after start, then every `interval` on a fixed grid
  measured from the schedule, not from the end of the last compute (no drift; missed ticks are
  skipped, not burst). Each sense's grid is shifted by a phase of its own, stable for its name
  and less than min(interval, 1 s): 500 senses at 1 s then start spread over the second instead
  of all in one instant, each still exactly every interval (a burst of 500 would take the
  workers ~80 ms of 2 cores to drain, making most computes late).
- `on` reflexes, manual triggers and interval ticks all arrive as `request()`.
- Coalesce: a sense has at most one compute in flight and one pending; a trigger arriving while
  one is in flight or pending merges into the pending one (the newest trigger's details win).
- Throttle: compute starts of a sense are at least `throttle` apart; a trigger inside the window
  becomes the pending compute, run when the window ends.
- Grace: triggers before `grace_period` has passed are held and run once at its end.

Each decision carries a reason code (`Decision`) at the point it is made, for `nerve explain`.
The scheduler only decides; running a compute is the `execute` callback's job. Time comes from an
injected `Clock`, so tests can control it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from nerve_core import NerveConfig, Signal, TriggerKind


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...


class AnyioClock:
    """The event loop's monotonic clock (the same clock as `time.monotonic()` on asyncio)."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)


class Decision(StrEnum):
    RAN = "ran"
    THROTTLED = "throttled"
    COALESCED = "coalesced"
    HELD_BY_GRACE = "held_by_grace"


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: TriggerKind
    signal: Signal | None = None
    scheduled: float | None = None  # the clock time an interval tick was due


Execute = Callable[[str, Trigger], Awaitable[None]]


class _SenseState:
    def __init__(self, name: str, throttle: float, grace: float) -> None:
        self.name = name
        self.throttle = throttle
        self.grace = grace
        self.pending: Trigger | None = None
        self.in_flight = False
        self.last_start: float | None = None
        self.wake = anyio.Event()
        self.waiting: anyio.CancelScope | None = None
        self.started = False  # past grace: its startup compute was taken
        self.decisions: dict[Decision, int] = dict.fromkeys(Decision, 0)


class ReflexScheduler:
    def __init__(
        self,
        config: NerveConfig,
        execute: Execute,
        clock: Clock | None = None,
        on_decision: Callable[[str, Trigger, Decision], None] | None = None,
        carry: ReflexScheduler | None = None,
    ) -> None:
        """`carry`: a scheduler this one replaces (a config reload): its start time (so the
        interval grid and grace periods go on), and each surviving sense's last start and
        pending trigger (so throttle holds across the reload) carry over."""
        self._config = config
        self._execute = execute
        self._clock = clock or AnyioClock()
        self._on_decision = on_decision
        self._states = {
            name: _SenseState(name, sense.throttle, sense.grace_period)
            for name, sense in config.senses.items()
        }
        self._interval_senses = {r.sense for r in config.reflexes if r.interval is not None}
        self._start: float | None = None
        self._closing = False
        self._ticks: anyio.CancelScope | None = None
        if carry is not None:
            self._start = carry._start
            for name, state in self._states.items():
                old = carry._states.get(name)
                if old is not None:
                    state.last_start, state.pending = old.last_start, old.pending
                    state.started = old.started

    def subscriptions(self) -> dict[str, list[str]]:
        """For each signal source, the senses whose `on` reflexes list it."""
        subscribers: dict[str, list[str]] = {}
        for reflex in self._config.reflexes:
            for source in reflex.on:
                targets = subscribers.setdefault(source, [])
                if reflex.sense not in targets:
                    targets.append(reflex.sense)
        return subscribers

    def decisions(self, sense: str) -> dict[Decision, int]:
        return dict(self._states[sense].decisions)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Schedule until `close()`; return once the computes in flight have finished."""
        if self._start is None:
            self._start = self._clock.now()
        async with anyio.create_task_group() as group:
            for state in self._states.values():
                group.start_soon(self._sense_loop, state)
            with anyio.CancelScope() as self._ticks:
                async with anyio.create_task_group() as ticks:
                    for reflex in self._config.reflexes:
                        if reflex.interval is not None:
                            grace = self._config.senses[reflex.sense].grace_period
                            ticks.start_soon(
                                self._interval_loop, reflex.sense, reflex.interval, grace
                            )
                    task_status.started()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop scheduling: no new compute starts; those in flight finish."""
        self._closing = True
        if self._ticks is not None:
            self._ticks.cancel()
        for state in self._states.values():
            state.wake.set()
            if state.waiting is not None:
                state.waiting.cancel()  # a sleep for grace or throttle ends now

    def request(self, sense: str, trigger: Trigger) -> Decision | None:
        """Ask for a compute of `sense`; say what became of the request (None once closed)."""
        if self._closing:
            return None
        state = self._states[sense]
        now = self._clock.now()
        if self._start is None or now < self._start + state.grace:
            decision = Decision.HELD_BY_GRACE
        elif state.in_flight or state.pending is not None:
            decision = Decision.COALESCED
        elif state.last_start is not None and now < state.last_start + state.throttle:
            decision = Decision.THROTTLED
        else:
            decision = Decision.RAN
        state.pending = trigger
        state.decisions[decision] += 1
        state.wake.set()
        if self._on_decision is not None:
            self._on_decision(sense, trigger, decision)
        return decision

    async def _sense_loop(self, state: _SenseState) -> None:
        assert self._start is not None
        with anyio.CancelScope() as waiting:
            state.waiting = waiting
            await self._clock.sleep_until(self._start + state.grace)
        if state.name in self._interval_senses and not state.started:
            # The first interval tick is due now, with whatever was held during grace: one
            # compute for both. (A separate tick at the same instant could race it into two.)
            startup = Trigger(TriggerKind.STARTUP, scheduled=self._start + state.grace)
            decision = Decision.COALESCED if state.pending is not None else Decision.RAN
            state.decisions[decision] += 1
            state.pending = state.pending or startup
        state.started = True
        while not self.is_closing():
            while state.pending is None and not self.is_closing():
                await state.wake.wait()
                state.wake = anyio.Event()
            if self.is_closing():
                return
            if state.last_start is not None and state.throttle > 0:
                with anyio.CancelScope() as waiting:
                    state.waiting = waiting
                    await self._clock.sleep_until(state.last_start + state.throttle)
                if self.is_closing():
                    return
            trigger, state.pending = state.pending, None
            assert trigger is not None
            state.in_flight = True
            state.last_start = self._clock.now()
            try:
                await self._execute(state.name, trigger)
            finally:
                state.in_flight = False

    async def _interval_loop(self, sense: str, interval: float, grace: float) -> None:
        assert self._start is not None
        # The tick at `grace` is the sense loop's startup compute; the grid goes on from there,
        # shifted by the sense's phase.
        deadline = self._start + grace + interval + phase(sense, interval)
        behind = self._clock.now() - deadline
        if behind > 0:  # a reload: join the grid where it is now
            deadline += math.ceil(behind / interval) * interval
        while True:
            await self._clock.sleep_until(deadline)
            self.request(sense, Trigger(TriggerKind.INTERVAL, scheduled=deadline))
            deadline += interval
            behind = self._clock.now() - deadline
            if behind > 0:  # stay on the grid: skip the ticks that were missed
                deadline += math.ceil(behind / interval) * interval


SPREAD_S = 1.0  # interval grids are spread over at most this much


def phase(sense: str, interval: float) -> float:
    """Where in its interval a sense's grid lies: stable for its name (so a restart or reload
    keeps it), spread evenly over min(interval, SPREAD_S)."""
    return zlib.crc32(sense.encode()) / 2**32 * min(interval, SPREAD_S)
