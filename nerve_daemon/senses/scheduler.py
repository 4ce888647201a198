"""ReflexScheduler: decides when each sense computes (DESIGN.md, "Scheduling semantics").

- Timer reflexes (`interval:`, `cron:`) tick on grids (`senses/ticks.py`, `timing/grids.py`):
  interval grids anchored on the epoch, with a phase per sense, so a restart finds the same grid
  and knows the ticks it missed; missed ticks are skipped, not burst, while running. At the end
  of grace a sense computes what its timers want at start (`startup_triggers`): once for a timer
  with no mark, and for ticks missed while the daemon was down as `catch_up` says.
- `on` reflexes, manual and delayed triggers and timer ticks all arrive as `request()`.
- Coalesce: a sense has at most one compute in flight and one pending; a trigger arriving while
  one is in flight or pending merges into the pending one (the newest trigger's details win).
- Throttle: compute starts of a sense are at least `throttle` apart; a trigger inside the window
  becomes the pending compute, run when the window ends. The last start of a throttled sense is
  marked in logs.db, so a restart does not compute it inside its window either.
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
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import anyio
from anyio.abc import TaskGroup, TaskStatus

from nerve_core import NerveConfig, Signal, TriggerKind

from ..timing.clock import AnyioClock, Clock
from ..timing.marks import MarkBuffer, start_key
from .ticks import Ticks, grid_keys, startup_triggers, timers_rebuilt

__all__ = ["AnyioClock", "Clock", "Decision", "ReflexScheduler", "Trigger"]


_TICKS = frozenset({TriggerKind.INTERVAL, TriggerKind.CRON})  # what a timer fires live


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
    TriggerKind.CRON: "c",
    TriggerKind.CATCH_UP: "b",  # backfill
    TriggerKind.DELAYED: "d",
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
    scheduled: float | None = None  # the wall time (epoch seconds) a timer's tick was due
    id: str = ""  # made from the kind when not given
    attempt: int = 1  # `retry:` the second try of a failed compute is attempt 2, and so on

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
    next_ticks: tuple[float, ...]  # the next tick of each timer reflex


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
        self.backlog: deque[Trigger] = deque()  # `catch_up: all`: one compute each, in turn

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
        marks: MarkBuffer | None = None,
    ) -> None:
        self._config = config
        self._execute = execute
        self._clock = clock or AnyioClock()
        self._on_decision = on_decision
        self.marks = marks or MarkBuffer(lambda _: None, {})
        self._states = {
            name: _SenseState(name, sense.throttle, sense.grace_period)
            for name, sense in config.senses.items()
        }
        self._start: float | None = None
        self._closing = False
        self._ticks: anyio.CancelScope | None = None
        self._group: TaskGroup | None = None
        self._tick_group: TaskGroup | None = None
        self._timers = Ticks(self._clock, self.marks, self._tick)

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
            next_ticks=tuple(sorted(self._timers.next.get(sense, {}).values())),
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
        for state in self._states.values():
            self._restore_throttle(state)
        async with anyio.create_task_group() as group:
            self._group = group
            for state in self._states.values():
                group.start_soon(self._sense_loop, state)
            with anyio.CancelScope() as self._ticks:
                async with anyio.create_task_group() as ticks:
                    self._tick_group = ticks
                    self._timers.start(ticks, self._config, self._config.senses)
                    task_status.started()
                    await anyio.sleep_forever()

    def _restore_throttle(self, state: _SenseState) -> None:
        """A throttle window a previous kernel began (its start marked) goes on after a restart."""
        marked = self.marks.known.get(start_key(state.name))
        if marked is None or state.throttle <= 0:
            return
        age = self._clock.wall() - marked / 1000
        if 0 <= age < state.throttle:  # a wall clock set back makes no window longer
            state.last_start = self._clock.now() - age

    def _tick(self, sense: str, kind: TriggerKind, tick: float) -> None:
        self.request(sense, Trigger(kind, scheduled=tick))

    def apply(self, config: NerveConfig) -> None:
        """Take a reloaded nerve.yaml in place: senses it leaves alone keep their timers, pending
        triggers and computes in flight; a changed sense takes its new throttle and grace at
        once; an added sense starts; a removed one stops after its compute in flight. Only the
        timer loops of senses whose timers changed are rebuilt (on their epoch-anchored grids)."""
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
        changed = timers_rebuilt(old, config)
        for name in changed | (set(old.senses) - set(config.senses)):
            self._timers.stop(name)
        if self._tick_group is not None:
            fresh = set(config.senses) - set(old.senses)
            self._timers.start(self._tick_group, config, changed | fresh)

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
        if not state.started and (
            self._start is None or self._clock.now() < self._start + state.grace
        ):
            decision = Decision.HELD_BY_GRACE
        elif state.running is not None or state.pending is not None:
            decision = Decision.COALESCED
        elif self._throttled(state):
            decision = Decision.THROTTLED
        else:
            decision = Decision.RAN
        replaced, state.pending = state.pending, trigger
        state.wake.set()
        self._decided(sense, trigger, decision, replaced)
        return decision

    def _throttled(self, state: _SenseState) -> bool:
        last = state.last_start
        return last is not None and state.throttle > 0 and self._clock.now() < last + state.throttle

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
        startups = self._startups(state.name) if not state.started else []
        if startups:
            # What the timers want at start is due now, with whatever was held during grace:
            # one compute for both. (A separate tick at the same instant could race it into two.)
            first, *rest = startups
            held, state.pending = state.pending, first
            if held is not None:  # one compute for what was held and the tick (newest wins)
                self._decided(state.name, first, Decision.COALESCED, held)
            elif self._throttled(state):  # a window a previous kernel began goes on
                self._decided(state.name, first, Decision.THROTTLED)
            else:
                self._decided(state.name, first, Decision.RAN)
            state.backlog.extend(rest)
        state.started = True
        while not self._ended(state):
            while state.pending is None and not self._ended(state):
                if state.backlog:  # `catch_up: all`: the next missed tick, once idle
                    state.pending = state.backlog.popleft()
                    self._decided(state.name, state.pending, Decision.RAN)
                    break
                await state.wake.wait()
                state.wake = anyio.Event()
            if state.last_start is not None:
                await self._sleep_until(state, functools.partial(_after, state.last_start, state))
            if self._ended(state):
                return
            trigger: Trigger | None
            if state.backlog and state.pending is not None and state.pending.kind in _TICKS:
                # `catch_up: all`: a live tick waits behind the missed ones, oldest first (it
                # stays pending: a newer tick merges into it meanwhile)
                trigger = state.backlog.popleft()
                self._decided(state.name, trigger, Decision.RAN)
            else:
                trigger, state.pending = state.pending, None
            assert trigger is not None
            state.running = trigger
            state.last_start = self._clock.now()
            if state.throttle > 0:
                self.marks.start(state.name, self._clock.wall())
            try:
                await self._execute(state.name, trigger)
            finally:
                state.running = None

    def _startups(self, sense: str) -> list[Trigger]:
        """The computes `sense`'s timers want at the end of its grace (see `startup_triggers`);
        every tick missed so far is then settled, and marked so."""
        known, wall = self.marks.known, self._clock.wall()
        wanted = startup_triggers(self._config, sense, known, wall)
        for grid_key in grid_keys(self._config, sense):
            self.marks.tick(sense, grid_key, 0.0, wall)
        return [Trigger(kind, scheduled=tick) for kind, tick in wanted]


def _after(last_start: float, state: _SenseState) -> float:
    """When the throttle window that began at `last_start` ends (its throttle read now)."""
    return last_start + state.throttle
