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

Each decision carries a reason code (`Decision`) at the point it is made and goes to the
`on_decision` listener (the kernel's decision ledger, what `nerve explain` reads), with the
pending trigger it replaced when it coalesced. `view()` says what a sense waits for now. The
scheduler only decides; running a compute is the `execute` callback's job. Time comes from an
injected `Clock`, so tests can control it.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

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
    RAN = "ran"  # it computes now
    THROTTLED = "throttled"  # it computes when the throttle window ends
    COALESCED = "coalesced"  # merged into the pending compute (the newest trigger's details win)
    HELD_BY_GRACE = "held_by_grace"  # it computes when the grace period ends
    DROPPED = "dropped"  # pending when its sense left nerve.yaml or the kernel stopped


# A trigger id's first letter says its kind, so a row's `cause` alone tells where a chain began;
# `k` is a signal of the kernel's own ("@…"), whose computes' failures are not signalled again.
KERNEL_LETTER = "k"
KIND_LETTERS = {
    TriggerKind.INTERVAL: "i",
    TriggerKind.SIGNAL: "s",
    TriggerKind.MANUAL: "m",
    TriggerKind.STARTUP: "u",
}
_LINEAGE_PREFIX = f"{time.time_ns() // 1_000_000:x}"  # this kernel's start: unique per workspace
_lineage = itertools.count(1)


def new_trigger_id(kind: TriggerKind, *, kernel: bool = False) -> str:
    """A lineage id for a trigger: `<kind letter>-<kernel start>-<n>` (hex), unique in the
    workspace (one kernel runs per workspace at a time), and no system call per trigger."""
    letter = KERNEL_LETTER if kernel else KIND_LETTERS[kind]
    return f"{letter}-{_LINEAGE_PREFIX}-{next(_lineage):x}"


def trigger_kind_of(trigger_id: str) -> TriggerKind | None:
    """The kind a trigger id names (None for an id of another form, say a request's)."""
    letter, _, rest = trigger_id.partition("-")
    kinds = {letter: kind for kind, letter in KIND_LETTERS.items()}
    kinds[KERNEL_LETTER] = TriggerKind.SIGNAL
    return kinds.get(letter) if rest else None


def for_kernel_signal(trigger_id: str | None) -> bool:
    """Whether a trigger id is a compute's for one of the kernel's own signals."""
    return trigger_id is not None and trigger_id.startswith(KERNEL_LETTER + "-")


@dataclass(frozen=True, slots=True)
class Trigger:
    """A reason to compute. Its `id` is carried through the compute to the rows its outcome
    writes (their `cause`), and to the run a launch creates: what `nerve explain` walks."""

    kind: TriggerKind
    signal: Signal | None = None
    scheduled: float | None = None  # the clock time an interval tick was due
    id: str = ""  # made from the kind when not given

    def __post_init__(self) -> None:
        if not self.id:
            kernel = self.signal is not None and self.signal.source.startswith("@")
            object.__setattr__(self, "id", new_trigger_id(self.kind, kernel=kernel))


@dataclass(frozen=True, slots=True)
class SenseSchedule:
    """What a sense waits for now, on the scheduler's clock (see `ReflexScheduler.view`)."""

    pending: Trigger | None  # the compute to come, if one is asked for
    running: Trigger | None  # the compute in flight, if one is
    last_start: float | None
    throttle_until: float | None  # a pending compute waits for this while it is ahead
    grace_until: float | None  # triggers are held until then while it is ahead
    next_ticks: tuple[float, ...]  # the next tick of each interval reflex


Execute = Callable[[str, Trigger], Awaitable[None]]
# (sense, trigger, decision, the pending trigger it replaced when it coalesced)
OnDecision = Callable[[str, Trigger, Decision, "Trigger | None"], None]


class _SenseState:
    def __init__(self, name: str, throttle: float, grace: float) -> None:
        self.name = name
        self.throttle = throttle
        self.grace = grace
        self.pending: Trigger | None = None
        self.running: Trigger | None = None
        self.last_start: float | None = None
        self.wake = anyio.Event()
        self.waiting: anyio.CancelScope | None = None
        self.started = False  # past grace: its startup compute was taken
        self.removed = False  # gone from nerve.yaml: its loop ends, its compute in flight finishes
        self.next_ticks: dict[float, float] = {}  # interval → its next tick

    def stop_waiting(self) -> None:
        self.wake.set()
        if self.waiting is not None:
            self.waiting.cancel()  # a sleep for grace or throttle ends now


class ReflexScheduler:
    def __init__(
        self,
        config: NerveConfig,
        execute: Execute,
        clock: Clock | None = None,
        on_decision: OnDecision | None = None,
    ) -> None:
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
        self._group: TaskGroup | None = None
        self._tick_scopes: dict[str, anyio.CancelScope] = {}
        self._tick_group: TaskGroup | None = None

    def subscriptions(self) -> dict[str, list[str]]:
        """For each signal source, the senses whose `on` reflexes list it."""
        subscribers: dict[str, list[str]] = {}
        for reflex in self._config.reflexes:
            for source in reflex.on:
                targets = subscribers.setdefault(source, [])
                if reflex.sense not in targets:
                    targets.append(reflex.sense)
        return subscribers

    def view(self, sense: str) -> SenseSchedule | None:
        """What `sense` waits for now (None for a sense it does not schedule)."""
        state = self._states.get(sense)
        if state is None:
            return None
        now = self._clock.now()
        throttle_until = None
        if state.last_start is not None and now < state.last_start + state.throttle:
            throttle_until = state.last_start + state.throttle
        grace_until = None
        if self._start is None or now < self._start + state.grace:
            grace_until = (self._start or now) + state.grace
        return SenseSchedule(
            pending=state.pending,
            running=state.running,
            last_start=state.last_start,
            throttle_until=throttle_until,
            grace_until=grace_until,
            next_ticks=tuple(sorted(state.next_ticks.values())),
        )

    def now(self) -> float:
        return self._clock.now()

    def _decided(
        self, sense: str, trigger: Trigger, decision: Decision, replaced: Trigger | None = None
    ) -> None:
        if self._on_decision is not None:
            self._on_decision(sense, trigger, decision, replaced)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Schedule until `close()`; return once the computes in flight have finished."""
        if self._start is None:
            self._start = self._clock.now()
        async with anyio.create_task_group() as group:
            self._group = group
            for state in self._states.values():
                group.start_soon(self._sense_loop, state)
            with anyio.CancelScope() as self._ticks:
                async with anyio.create_task_group() as ticks:
                    self._tick_group = ticks
                    self._start_ticks(ticks, self._config.senses)
                    task_status.started()
                    await anyio.sleep_forever()

    def _start_ticks(self, ticks: TaskGroup, senses: Iterable[str]) -> None:
        """Start the interval loops of `senses`' reflexes, each in a scope of its sense's."""
        wanted = set(senses)
        for reflex in self._config.reflexes:
            if reflex.interval is None or reflex.sense not in wanted:
                continue
            scope = self._tick_scopes.setdefault(reflex.sense, anyio.CancelScope())
            grace = self._config.senses[reflex.sense].grace_period
            ticks.start_soon(self._ticking, scope, reflex.sense, reflex.interval, grace)

    async def _ticking(
        self, scope: anyio.CancelScope, sense: str, interval: float, grace: float
    ) -> None:
        with scope:
            await self._interval_loop(sense, interval, grace)

    def apply(self, config: NerveConfig) -> None:
        """Take a reloaded nerve.yaml in place: senses it leaves alone keep their timers, pending
        triggers and computes in flight; a changed sense takes its new throttle and grace at
        once; an added sense starts; a removed one stops after its compute in flight. Only the
        interval loops of senses whose reflexes changed are rebuilt, on the same grid."""
        assert self._group is not None
        old = self._config
        self._config = config
        for name in [name for name in self._states if name not in config.senses]:
            gone = self._states.pop(name)
            gone.removed = True
            gone.stop_waiting()
            if gone.pending is not None:
                self._decided(name, gone.pending, Decision.DROPPED)
        for name, sense in config.senses.items():
            state = self._states.get(name)
            if state is None:
                added = self._states[name] = _SenseState(name, sense.throttle, sense.grace_period)
                self._group.start_soon(self._sense_loop, added)
            elif (state.throttle, state.grace) != (sense.throttle, sense.grace_period):
                state.throttle, state.grace = sense.throttle, sense.grace_period
                state.stop_waiting()  # its sleep re-reads the new throttle or grace
        self._interval_senses = {r.sense for r in config.reflexes if r.interval is not None}
        changed = timers_rebuilt(old, config)
        for name in changed:
            scope = self._tick_scopes.pop(name, None)
            if scope is not None:
                scope.cancel()
            if name in self._states:
                self._states[name].next_ticks.clear()  # its loops start again below
        if self._tick_group is not None:
            self._start_ticks(self._tick_group, changed & set(config.senses))

    def close(self) -> None:
        """Stop scheduling: no new compute starts; those in flight finish."""
        self._closing = True
        if self._ticks is not None:
            self._ticks.cancel()
        for state in self._states.values():
            state.stop_waiting()
            if state.pending is not None:
                self._decided(state.name, state.pending, Decision.DROPPED)

    def request(self, sense: str, trigger: Trigger) -> Decision | None:
        """Ask for a compute of `sense`; say what became of the request (None once closed)."""
        state = self._states.get(sense)
        if self._closing or state is None:
            return None
        now = self._clock.now()
        if self._start is None or now < self._start + state.grace:
            decision = Decision.HELD_BY_GRACE
        elif state.running is not None or state.pending is not None:
            decision = Decision.COALESCED
        elif state.last_start is not None and now < state.last_start + state.throttle:
            decision = Decision.THROTTLED
        else:
            decision = Decision.RAN
        replaced, state.pending = state.pending, trigger
        state.wake.set()
        self._decided(sense, trigger, decision, replaced)
        return decision

    def _ended(self, state: _SenseState) -> bool:
        return self._closing or state.removed

    async def _sleep_until(self, state: _SenseState, deadline: Callable[[], float]) -> None:
        """Sleep until `deadline()`, read again whenever the sleep is cut short (a reload may
        change the throttle or grace it comes from), unless the sense's loop is ending."""
        while not self._ended(state) and self._clock.now() < deadline():
            with anyio.CancelScope() as waiting:
                state.waiting = waiting
                await self._clock.sleep_until(deadline())
            state.waiting = None

    async def _sense_loop(self, state: _SenseState) -> None:
        assert self._start is not None
        start = self._start
        await self._sleep_until(state, lambda: start + state.grace)
        if self._ended(state):
            return
        if state.name in self._interval_senses and not state.started:
            # The first interval tick is due now, with whatever was held during grace: one
            # compute for both. (A separate tick at the same instant could race it into two.)
            startup = Trigger(TriggerKind.STARTUP, scheduled=self._start + state.grace)
            held, state.pending = state.pending, startup
            if held is None:
                self._decided(state.name, startup, Decision.RAN)
            else:  # one compute for what was held and the tick (the newest's details win)
                self._decided(state.name, startup, Decision.COALESCED, held)
        state.started = True
        while not self._ended(state):
            while state.pending is None and not self._ended(state):
                await state.wake.wait()
                state.wake = anyio.Event()
            if state.last_start is not None:
                await self._sleep_until(state, functools.partial(_after, state.last_start, state))
            if self._ended(state):
                return
            trigger, state.pending = state.pending, None
            assert trigger is not None
            state.running = trigger
            state.last_start = self._clock.now()
            try:
                await self._execute(state.name, trigger)
            finally:
                state.running = None

    async def _interval_loop(self, sense: str, interval: float, grace: float) -> None:
        assert self._start is not None
        # The tick at `grace` is the sense loop's startup compute; the grid goes on from there,
        # shifted by the sense's phase.
        deadline = self._start + grace + interval + phase(sense, interval)
        behind = self._clock.now() - deadline
        if behind > 0:  # a reload: join the grid where it is now
            deadline += math.ceil(behind / interval) * interval
        state = self._states.get(sense)
        while True:
            if state is not None:
                state.next_ticks[interval] = deadline
            await self._clock.sleep_until(deadline)
            self.request(sense, Trigger(TriggerKind.INTERVAL, scheduled=deadline))
            deadline += interval
            behind = self._clock.now() - deadline
            if behind > 0:  # stay on the grid: skip the ticks that were missed
                deadline += math.ceil(behind / interval) * interval


SPREAD_S = 1.0  # interval grids are spread over at most this much


def _after(last_start: float, state: _SenseState) -> float:
    """When the throttle window that began at `last_start` ends (its throttle read now)."""
    return last_start + state.throttle


def intervals(config: NerveConfig, sense: str) -> list[float]:
    """The intervals of `sense`'s reflexes, in declaration order."""
    return [r.interval for r in config.reflexes if r.sense == sense and r.interval is not None]


def timers_rebuilt(old: NerveConfig, new: NerveConfig) -> set[str]:
    """The senses whose interval loops a reload from `old` to `new` rebuilds (on the same grid):
    their intervals or their settings changed, or they came or went. The rest keep theirs."""
    return {
        name
        for name in set(old.senses) | set(new.senses)
        if intervals(old, name) != intervals(new, name)
        or old.senses.get(name) != new.senses.get(name)
    }


def phase(sense: str, interval: float) -> float:
    """Where in its interval a sense's grid lies: stable for its name (so a restart or reload
    keeps it), spread evenly over min(interval, SPREAD_S)."""
    return zlib.crc32(sense.encode()) / 2**32 * min(interval, SPREAD_S)
