"""The scheduler's edges on a stepped clock: exact, not approximate (the scheduler takes its time
from an injected `Clock`, so no test of these depends on the machine's speed)."""

from __future__ import annotations

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from nerve_core import TriggerKind, parse_nerve_config
from nerve_daemon.senses.scheduler import Decision, ReflexScheduler, Trigger
from nerve_daemon.timing.grids import phase

from .stepped_clock import EPOCH, SteppedClock

pytestmark = pytest.mark.anyio


def scheduled(config: str, clock: SteppedClock, starts: list[tuple[str, float]]) -> ReflexScheduler:
    """A scheduler for `config` on `clock` whose computes only note when they started."""
    parsed = parse_nerve_config(config)
    assert parsed.ok

    async def execute(sense: str, trigger: Trigger) -> None:
        starts.append((sense, clock.now()))

    return ReflexScheduler(parsed.value, execute, clock)


async def test_a_trigger_exactly_at_the_end_of_the_throttle_window_runs_at_once() -> None:
    clock, starts = SteppedClock(), []
    scheduler = scheduled("senses:\n  s: {throttle: 1s}\n", clock, starts)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        assert scheduler.request("s", Trigger(TriggerKind.MANUAL)) is Decision.RAN
        await wait_all_tasks_blocked()
        assert starts == [("s", 100.0)]
        await clock.advance_to(100.999)
        assert scheduler.request("s", Trigger(TriggerKind.MANUAL)) is Decision.THROTTLED
        await wait_all_tasks_blocked()
        assert starts == [("s", 100.0)]  # held for the rest of the window
        await clock.advance_to(101.0)
        assert starts == [("s", 100.0), ("s", 101.0)]  # at the window's end exactly
        await clock.advance_to(102.0)  # exactly one throttle after the last start
        assert scheduler.request("s", Trigger(TriggerKind.MANUAL)) is Decision.RAN
        await wait_all_tasks_blocked()
        assert starts[-1] == ("s", 102.0)
        scheduler.close()


async def test_triggers_before_grace_are_held_and_run_once_exactly_at_its_end() -> None:
    clock, starts = SteppedClock(), []
    scheduler = scheduled("senses:\n  s: {grace_period: 5s}\n", clock, starts)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await clock.advance_to(104.999)
        decisions = [scheduler.request("s", Trigger(TriggerKind.MANUAL)) for _ in range(3)]
        assert decisions == [Decision.HELD_BY_GRACE] * 3
        await wait_all_tasks_blocked()
        assert starts == []
        await clock.advance_to(105.0)
        assert starts == [("s", 105.0)]  # once, for all three
        scheduler.close()


async def test_a_reload_in_place_shortens_a_waiting_throttle_and_drops_a_removed_sense() -> None:
    """`apply()` changes the running scheduler: a trigger waiting in a throttle window runs at
    the end of the new, shorter window; a removed sense's pending trigger never runs; an added
    sense can be triggered at once."""
    clock, starts = SteppedClock(), []
    old = "senses:\n  s: {throttle: 10s}\n  gone: {throttle: 10s}\n"
    scheduler = scheduled(old, clock, starts)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        for sense in ("s", "gone"):
            assert scheduler.request(sense, Trigger(TriggerKind.MANUAL)) is Decision.RAN
        await wait_all_tasks_blocked()
        await clock.advance_to(101.0)
        for sense in ("s", "gone"):
            assert scheduler.request(sense, Trigger(TriggerKind.MANUAL)) is Decision.THROTTLED
        await wait_all_tasks_blocked()  # both now sleep toward the old window's end (110)
        new = parse_nerve_config("senses:\n  s: {throttle: 2s}\n  added: {}\n")
        assert new.ok
        scheduler.apply(new.value)
        await wait_all_tasks_blocked()
        await clock.advance_to(101.999)
        assert sorted(starts) == [("gone", 100.0), ("s", 100.0)]
        await clock.advance_to(102.0)  # the new window's end, not the old one's (110)
        assert starts[-1] == ("s", 102.0)
        assert scheduler.request("gone", Trigger(TriggerKind.MANUAL)) is None
        assert scheduler.request("added", Trigger(TriggerKind.MANUAL)) is Decision.RAN
        await wait_all_tasks_blocked()
        assert starts[-1] == ("added", 102.0)
        await clock.advance_to(111.0)
        assert [sense for sense, _ in starts].count("gone") == 1  # its pending one never ran
        scheduler.close()


async def test_ticks_missed_while_the_clock_jumped_ahead_are_skipped_not_burst() -> None:
    """A loop held up for several intervals (a stopped kernel, a busy machine) asks for one
    compute for all the missed ticks, then goes on on the same grid."""
    clock = SteppedClock()
    parsed = parse_nerve_config("senses:\n  s: {}\nreflexes:\n  - sense: s\n    interval: 1s\n")
    assert parsed.ok
    ticks: list[float | None] = []

    async def execute(sense: str, trigger: Trigger) -> None:
        pass

    def noted(sense: str, trigger: Trigger, decision: Decision, replaced: object) -> None:
        if trigger.kind is TriggerKind.INTERVAL:
            ticks.append(trigger.scheduled)

    scheduler = ReflexScheduler(parsed.value, execute, clock, on_decision=noted)
    grid = 100.0 + phase("s", 1.0)  # the first tick after the startup compute at 100
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        # (wall times near 1.8e9 s are exact to about 2e-7 s: the grid is compared to 1e-6 s)
        await clock.advance_to(grid + 4.5)  # four and a half intervals at once
        assert ticks == pytest.approx([grid + EPOCH], abs=1e-6)  # one request, not five
        await clock.advance_to(grid + 4.999)
        assert len(ticks) == 1
        await clock.advance_to(grid + 5.0 + 1e-6)  # back on the grid: the tick where it was
        assert ticks == pytest.approx([grid + EPOCH, grid + 5.0 + EPOCH], abs=1e-6)
        scheduler.close()


async def test_the_throttle_window_is_measured_from_a_computes_start_not_its_end() -> None:
    """A compute taking half its 1 s window: the next starts 1 s after the first began."""
    clock = SteppedClock()
    parsed = parse_nerve_config("senses:\n  s: {throttle: 1s}\n")
    assert parsed.ok
    starts: list[float] = []
    release = anyio.Event()

    async def execute(sense: str, trigger: Trigger) -> None:
        starts.append(clock.now())
        if len(starts) == 1:
            await release.wait()  # the first compute runs until the test lets it end

    scheduler = ReflexScheduler(parsed.value, execute, clock)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        scheduler.request("s", Trigger(TriggerKind.MANUAL))
        await wait_all_tasks_blocked()
        await clock.advance_to(100.5)
        release.set()  # it ended half a second after it began
        await wait_all_tasks_blocked()
        assert scheduler.request("s", Trigger(TriggerKind.MANUAL)) is Decision.THROTTLED
        await wait_all_tasks_blocked()
        await clock.advance_to(101.0)
        assert starts == [100.0, 101.0]  # not 101.5
        scheduler.close()


async def test_once_closed_the_scheduler_refuses_triggers_and_starts_nothing() -> None:
    clock, starts = SteppedClock(), []
    scheduler = scheduled("senses:\n  s: {}\n", clock, starts)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        scheduler.close()
        assert scheduler.request("s", Trigger(TriggerKind.MANUAL)) is None
        await wait_all_tasks_blocked()
        await clock.advance_to(200.0)
    assert starts == []
