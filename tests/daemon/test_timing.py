"""Time on a stepped clock: cron grids across DST, epoch-anchored interval grids, what a start
catches up from the marks a previous kernel left, a throttle window that outlives its kernel,
wall clock jumps, jitter, and the delayed-trigger heap. Exact, not approximate: nothing here
depends on the machine's speed."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from nerve_core import TriggerKind, parse_nerve_config
from nerve_daemon.senses.scheduler import Decision, ReflexScheduler, Trigger
from nerve_daemon.timing.delayed import DelayedTimers, UnknownTimer
from nerve_daemon.timing.grids import MAX_CATCH_UP, CronGrid, IntervalGrid, jitter, phase
from nerve_daemon.timing.marks import MarkBuffer, start_key, tick_key
from nerve_store import AddTimer, EndTimer, SetMarks, TimerRecord, WriteOp

from .stepped_clock import SteppedClock

pytestmark = pytest.mark.anyio

PARIS = ZoneInfo("Europe/Paris")
WALL = 1_800_000_000.0  # what the stepped clock's wall reads at its start (a whole hour, UTC)


def paris(*parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=PARIS, fold=fold).timestamp()  # type: ignore[misc]


# -- grids ----------------------------------------------------------------------------------------


def test_cron_in_a_time_zone_fires_once_in_a_skipped_hour_and_once_in_a_repeated_hour() -> None:
    grid = CronGrid("30 2 * * *", "Europe/Paris")
    # 29 March 2026: 02:00 jumps to 03:00, so 02:30 never happens: it fires once, at 03:00.
    spring = grid.next_after(paris(2026, 3, 28, 12))
    assert spring == paris(2026, 3, 29, 3, 0)
    assert grid.next_after(spring) == paris(2026, 3, 30, 2, 30)
    # 25 October 2026: 02:00-03:00 happens twice; it fires the first time only.
    autumn = grid.next_after(paris(2026, 10, 24, 12))
    assert autumn == paris(2026, 10, 25, 2, 30, fold=0)
    assert grid.next_after(autumn) == paris(2026, 10, 26, 2, 30)  # not the second 02:30
    assert paris(2026, 10, 25, 2, 30, fold=1) - autumn == 3600  # which came an hour later


def test_cron_names_stand_for_their_five_fields_and_missed_ticks_keep_the_newest() -> None:
    hourly = CronGrid("@hourly", "UTC")
    assert hourly.key == CronGrid("0 * * * *", "UTC").key
    since = datetime(2026, 12, 1, 10, 30, tzinfo=UTC).timestamp()
    until = datetime(2026, 12, 1, 15, 10, tzinfo=UTC).timestamp()
    hours = [datetime(2026, 12, 1, hour, tzinfo=UTC).timestamp() for hour in range(11, 16)]
    assert hourly.missed(since, until, 100) == (hours, 5)
    newest, counted = hourly.missed(since, until, 2)
    assert newest == hours[-2:]
    assert counted == 3  # more than the limit: at least limit + 1
    assert hourly.missed(until, until + 60, 100) == ([], 0)
    # The tick a timer fired last is not missed: (since, until], since excluded, until included.
    assert hourly.missed(hours[0], hours[2], 100) == (hours[1:3], 2)


def test_an_interval_grid_is_anchored_on_the_epoch_so_a_restart_finds_the_same_ticks() -> None:
    grid = IntervalGrid(60.0, phase("s", 60.0))
    first = grid.next_after(WALL + 0.5)
    assert (first - grid.phase) % 60 == pytest.approx(0, abs=1e-6)
    assert WALL < first <= WALL + 60.5
    assert grid.next_after(first) == pytest.approx(first + 60)
    assert grid.next_after(first - 0.001) == first  # strictly after: the tick itself
    ticks, count = grid.missed(first - 0.001, first + 600, MAX_CATCH_UP)
    assert count == 11
    assert ticks == pytest.approx([first + 60 * k for k in range(11)])
    assert grid.missed(first, first + 59.9, MAX_CATCH_UP) == ([], 0)
    newest, count = grid.missed(first - 86_400, first, 3)
    assert count == 1440  # a day of minutes, the first one excluded: (since, until]
    assert newest == pytest.approx([first - 120, first - 60, first])


def test_jitter_is_the_same_for_the_same_tick_and_stays_under_its_bound() -> None:
    grid = IntervalGrid(60.0, 0.0)
    delays = [jitter("s", grid, WALL + 60 * k, 30.0) for k in range(200)]
    assert delays == [jitter("s", grid, WALL + 60 * k, 30.0) for k in range(200)]
    assert all(0 <= delay < 30 for delay in delays)
    assert len(set(delays)) > 150  # spread, not one value
    assert max(delays) > 20
    assert jitter("s", grid, WALL, 0.0) == 0.0


# -- the scheduler on a stepped clock -------------------------------------------------------------


def scheduler_for(
    config: str,
    clock: SteppedClock,
    marks: dict[str, int] | None = None,
    posted: list[SetMarks] | None = None,
) -> tuple[ReflexScheduler, list[tuple[str, Trigger, float]], list[tuple[str, Decision]]]:
    parsed = parse_nerve_config(config)
    assert parsed.ok, parsed
    computes: list[tuple[str, Trigger, float]] = []
    decisions: list[tuple[str, Decision]] = []

    async def execute(sense: str, trigger: Trigger) -> None:
        computes.append((sense, trigger, clock.now()))

    def decided(sense: str, trigger: Trigger, decision: Decision, _: object) -> None:
        decisions.append((sense, decision))

    buffer = MarkBuffer((posted if posted is not None else []).append, marks or {})
    scheduler = ReflexScheduler(parsed.value, execute, clock, decided, buffer)
    return scheduler, computes, decisions


def kinds(computes: list[tuple[str, Trigger, float]]) -> list[TriggerKind]:
    return [trigger.kind for _, trigger, _ in computes]


@pytest.mark.parametrize("catch_up", ["none", "last", "all"])
async def test_ticks_missed_while_the_daemon_was_down_are_caught_up_as_catch_up_says(
    catch_up: str,
) -> None:
    """A previous kernel fired its last tick ten and a half minutes ago (its mark says so):
    `none` computes at the next tick only, `last` once now for the newest missed tick, `all`
    once for each, oldest first."""
    clock = SteppedClock()
    grid = IntervalGrid(60.0, phase("s", 60.0))
    last = grid.next_after(WALL - 631) - 60  # a tick of its grid, 10.5 to 11.5 minutes ago
    missed, count = grid.missed(last, WALL, MAX_CATCH_UP)
    assert count == len(missed) >= 10
    config = f"senses:\n  s: {{}}\nreflexes:\n  - sense: s\n    interval: 60s\n    catch_up: {catch_up}\n"
    marks = {tick_key("s", grid.key): round(last * 1000)}
    scheduler, computes, _ = scheduler_for(config, clock, marks)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        if catch_up == "none":
            assert computes == []
        elif catch_up == "last":
            assert kinds(computes) == [TriggerKind.CATCH_UP]
            assert computes[0][1].scheduled == pytest.approx(missed[-1])
        else:
            assert kinds(computes) == [TriggerKind.CATCH_UP] * len(missed)
            assert [trigger.scheduled for _, trigger, _ in computes] == pytest.approx(missed)
        before = len(computes)
        next_tick = grid.next_after(WALL)
        await clock.advance_to(100 + next_tick - WALL + 1e-6)
        assert kinds(computes[before:]) == [TriggerKind.INTERVAL]  # then on its grid
        # The missed window is settled at start: a restart now would not catch up again.
        assert scheduler.marks.known[tick_key("s", grid.key)] >= round(WALL * 1000)
        scheduler.close()


async def test_live_ticks_during_a_slow_catch_up_all_wait_behind_the_missed_ones() -> None:
    """Each catch-up compute takes 2 s and the timer ticks every second: the missed ticks still
    compute first, oldest first, and the live ticks that came meanwhile make one compute after
    them (seen under load: one ran between two catch-ups)."""
    clock = SteppedClock()
    grid = IntervalGrid(1.0, phase("s", 1.0))
    config = "senses:\n  s: {}\nreflexes:\n  - sense: s\n    interval: 1s\n    catch_up: all\n"
    marks = {tick_key("s", grid.key): round((grid.next_after(WALL - 5) - 1) * 1000)}
    parsed = parse_nerve_config(config)
    assert parsed.ok
    computes: list[Trigger] = []

    async def execute(sense: str, trigger: Trigger) -> None:
        computes.append(trigger)
        await clock.sleep_until(clock.now() + 2.0)

    buffer = MarkBuffer([].append, marks)
    scheduler = ReflexScheduler(parsed.value, execute, clock, None, buffer)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        missed = sum(1 for t in computes if t.kind is TriggerKind.CATCH_UP)
        for step in range(1, 40):  # 15 s, half a second at a time
            await clock.advance_to(100 + step * 0.5)
        scheduler.close()
        group.cancel_scope.cancel()  # the compute under way sleeps on the stepped clock
    caught = [t for t in computes if t.kind is TriggerKind.CATCH_UP]
    first_live = next(i for i, t in enumerate(computes) if t.kind is not TriggerKind.CATCH_UP)
    assert missed == 1  # one at a time: the first had begun
    assert len(caught) >= 5
    assert first_live == len(caught)  # every catch-up before any live tick
    scheduled = [t.scheduled for t in caught]
    assert scheduled == sorted(scheduled)  # oldest first
    assert computes[first_live].kind is TriggerKind.INTERVAL


async def test_catch_up_all_is_bounded_to_the_newest_ticks() -> None:
    clock = SteppedClock()
    grid = IntervalGrid(60.0, phase("s", 60.0))
    config = "senses:\n  s: {}\nreflexes:\n  - sense: s\n    interval: 60s\n    catch_up: all\n"
    marks = {tick_key("s", grid.key): round((WALL - 86_400) * 1000)}  # down for a day
    scheduler, computes, _ = scheduler_for(config, clock, marks)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        assert len(computes) == 100  # the documented bound, pinned here
        assert computes[-1][1].scheduled == pytest.approx(grid.missed(0, WALL, 1)[0][0])
        scheduler.close()


async def test_timers_of_one_sense_that_each_missed_ticks_compute_once_unless_one_wants_all() -> (
    None
):
    """An interval and a cron timer of one sense, both `catch_up: last`, both missed ticks: one
    catch-up compute, for the newest missed tick of either."""
    clock = SteppedClock()
    config = (
        "senses:\n  s: {}\nreflexes:\n  - sense: s\n    interval: 60s\n"
        "  - sense: s\n    cron: '*/5 * * * *'\n    timezone: UTC\n"
    )
    interval, cron = IntervalGrid(60.0, phase("s", 60.0)), CronGrid("*/5 * * * *", "UTC")
    last = WALL - 1800  # both last fired half an hour ago
    marks = {tick_key("s", grid.key): round(last * 1000) for grid in (interval, cron)}
    newest = max(interval.missed(last, WALL, 1)[0][0], cron.missed(last, WALL, 1)[0][0])
    scheduler, computes, _ = scheduler_for(config, clock, marks)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        assert kinds(computes) == [TriggerKind.CATCH_UP]
        assert computes[0][1].scheduled == pytest.approx(newest)
        scheduler.close()


async def test_with_no_mark_an_interval_timer_computes_at_start_and_a_cron_timer_waits() -> None:
    clock = SteppedClock()
    config = (
        "senses:\n  i: {}\n  c: {}\nreflexes:\n  - sense: i\n    interval: 1h\n"
        "  - sense: c\n    cron: '0 9 * * *'\n    timezone: UTC\n"
    )
    posted: list[SetMarks] = []
    scheduler, computes, _ = scheduler_for(config, clock, posted=posted)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        assert [(sense, trigger.kind) for sense, trigger, _ in computes] == [
            ("i", TriggerKind.STARTUP)
        ]
        scheduler.marks.flush()
        # Both timers are marked at start, so a later start knows what it missed since.
        written = {key for op in posted for key in op.items}
        assert written == {"tick i interval 3600", "tick c cron 0 9 * * * UTC"}
        scheduler.close()


async def test_a_throttle_window_begun_by_a_previous_kernel_holds_the_first_compute() -> None:
    clock = SteppedClock()
    config = "senses:\n  s: {throttle: 10s}\nreflexes:\n  - sense: s\n    interval: 1h\n"
    marks = {start_key("s"): round((WALL - 3) * 1000)}  # it started 3 s before this kernel
    scheduler, computes, decisions = scheduler_for(config, clock, marks)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        assert decisions == [("s", Decision.THROTTLED)]
        view = scheduler.view("s")
        assert view is not None
        assert view.throttle_until == pytest.approx(107.0)
        await clock.advance_to(106.999)
        assert computes == []
        await clock.advance_to(107.0)
        assert len(computes) == 1  # the startup compute (its first tick merged into it)
        assert computes[0][2] == 107.0
        # Its own start is marked at once (a throttle mark is never left for the next flush).
        assert scheduler.marks.known[start_key("s")] == round((WALL + 7) * 1000)
        await clock.advance_to(117.5)
        view = scheduler.view("s")
        assert view is not None
        assert view.throttle_until is None  # shown only while it is ahead
        scheduler.close()


async def test_a_mark_from_a_wall_clock_set_back_does_not_make_a_window_longer() -> None:
    clock = SteppedClock()
    config = "senses:\n  s: {throttle: 10s}\n"
    marks = {start_key("s"): round((WALL + 3600) * 1000)}  # "in the future": the clock went back
    scheduler, computes, _ = scheduler_for(config, clock, marks)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        assert scheduler.request("s", Trigger(TriggerKind.MANUAL)) is Decision.RAN
        await wait_all_tasks_blocked()
        assert len(computes) == 1
        scheduler.close()


async def test_cron_follows_the_wall_clock_set_back_and_forward_and_intervals_do_not() -> None:
    """Set back an hour after a cron tick fired, the wall clock passes that tick again: it does
    not fire twice. Set forward eight hours, it fires once, not eight times. An interval timer
    beside it keeps its ticks every 10 s of monotonic time through both."""
    clock = SteppedClock(epoch=WALL - 10 - 100)  # 10 s before a whole hour
    config = (
        "senses:\n  c: {}\n  i: {}\nreflexes:\n  - sense: c\n    cron: '0 * * * *'\n"
        "    timezone: UTC\n  - sense: i\n    interval: 10s\n"
    )
    scheduler, computes, _ = scheduler_for(config, clock)

    def cron_ticks() -> list[float | None]:
        return [trigger.scheduled for sense, trigger, _ in computes if sense == "c"]

    def interval_count() -> int:
        return sum(1 for sense, trigger, _ in computes if sense == "i")

    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        assert cron_ticks() == []
        await clock.advance_to(110.0)
        assert cron_ticks() == [WALL]
        await clock.set_wall(WALL - 3600 + 5)  # back an hour
        for step in range(1, 74):  # the hour again, 50 s at a time
            await clock.advance_to(110.0 + 50 * step)
        assert clock.wall() > WALL + 10
        assert cron_ticks() == [WALL]  # the tick it fired is not fired again
        # The interval timer ticked at every step of that hour (one compute a step: the ticks
        # in between are skipped, not burst); on the wall clock it would have waited an hour.
        assert interval_count() >= 73
        await clock.set_wall(clock.wall() + 8 * 3600)  # forward eight hours
        await clock.advance_to(clock.time + 60)
        assert cron_ticks() == [WALL, WALL + 3600]  # once for all the hours it jumped over
        before = interval_count()
        for _ in range(3):
            await clock.advance_to(clock.time + 10)
        assert interval_count() - before == 3  # every 10 s, the eight hours or not
        scheduler.close()


async def test_a_jittered_tick_comes_late_by_its_own_stable_delay() -> None:
    clock = SteppedClock()
    config = "senses:\n  s: {}\nreflexes:\n  - sense: s\n    interval: 60s\n    jitter: 30s\n"
    grid = IntervalGrid(60.0, phase("s", 60.0))
    tick = grid.next_after(WALL)
    delay = jitter("s", grid, tick, 30.0)
    assert delay > 0
    scheduler, computes, _ = scheduler_for(config, clock)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await wait_all_tasks_blocked()
        assert kinds(computes) == [TriggerKind.STARTUP]
        await clock.advance_to(100 + tick - WALL + delay - 0.01)
        assert kinds(computes) == [TriggerKind.STARTUP]
        await clock.advance_to(100 + tick - WALL + delay + 1e-6)
        assert kinds(computes) == [TriggerKind.STARTUP, TriggerKind.INTERVAL]
        assert computes[-1][1].scheduled == pytest.approx(tick)  # the tick it stands for
        scheduler.close()


async def test_a_timer_rebuilt_by_a_reload_ticks_on_its_new_epoch_grid_without_a_burst() -> None:
    clock = SteppedClock()
    old = "senses:\n  s: {}\nreflexes:\n  - sense: s\n    interval: 10s\n"
    scheduler, computes, _ = scheduler_for(old, clock)
    async with anyio.create_task_group() as group:
        await group.start(scheduler.run)
        await clock.advance_to(133.3)
        before = len(computes)
        new = parse_nerve_config(old.replace("10s", "20s"))
        assert new.ok
        scheduler.apply(new.value)
        await wait_all_tasks_blocked()
        assert len(computes) == before  # nothing at the reload itself
        grid = IntervalGrid(20.0, phase("s", 20.0))
        due = grid.next_after(clock.wall())
        await clock.advance_to(100 + due - WALL + 1e-6)
        assert len(computes) == before + 1
        assert computes[-1][1].scheduled == pytest.approx(due)
        assert (due - grid.phase) % 20 == pytest.approx(0, abs=1e-6)
        scheduler.close()


# -- delayed triggers -----------------------------------------------------------------------------


async def test_delayed_triggers_fire_in_due_order_and_a_cancelled_one_never_fires() -> None:
    clock = SteppedClock()
    written: list[WriteOp] = []
    fired: list[str] = []

    async def write(op: WriteOp) -> None:
        written.append(op)

    async def fire(timer: TimerRecord) -> tuple[str, str]:
        fired.append(timer.timer_id)
        return "fired", "ran"

    timers = DelayedTimers(clock, write, fire)
    due = round(WALL * 1000)
    async with anyio.create_task_group() as group:
        group.start_soon(timers.run)
        await timers.add("late", "sense", "s", due + 30_000)
        await wait_all_tasks_blocked()
        await timers.add("soon", "sense", "s", due + 10_000)  # sooner than the one it waits for
        await timers.add("gone", "workflow", "w", due + 20_000, {"prompt": "p"})
        assert [timer.timer_id for timer in timers.pending()] == ["soon", "gone", "late"]
        assert isinstance(written[0], AddTimer)  # committed before it is kept
        await timers.cancel("gone")
        with pytest.raises(UnknownTimer, match='no pending delayed trigger "gone"'):
            await timers.cancel("gone")
        await clock.advance_to(109.999)
        assert fired == []
        await clock.advance_to(110.0)
        assert fired == ["soon"]
        await clock.advance_to(130.0)
        assert fired == ["soon", "late"]
        assert timers.pending() == []
        group.cancel_scope.cancel()
    ends = [(op.timer_id, op.status) for op in written if isinstance(op, EndTimer)]
    assert ends == [("gone", "cancelled"), ("soon", "fired"), ("late", "fired")]
