"""The wall-clock wheel on a stepped clock: timers due at one instant fire together, in one pass
before anything they set in motion runs; a timer cancelled before its instant never fires; an
instant sooner than the one the wheel sleeps toward is kept; the wall clock set forward fires what
it passed, set back fires nothing early. And the marks such a pass notes are written as one."""

from __future__ import annotations

import anyio
import pytest

from nerve_daemon.timing.marks import MarkBuffer, start_key
from nerve_daemon.timing.wheel import WallWheel
from nerve_store import SetMarks

from .stepped_clock import SteppedClock

pytestmark = pytest.mark.anyio

WALL = 1_800_000_000.0  # the stepped clock's wall at monotonic 100


async def test_timers_due_at_one_instant_fire_in_one_pass_before_what_they_wake() -> None:
    clock = SteppedClock()
    wheel = WallWheel(clock)
    happened: list[str] = []

    async def timer(n: int, woken: anyio.Event) -> None:
        await wheel.at(WALL + 60, lambda: (happened.append(f"fire {n}"), woken.set()))

    async def woken_by(n: int, woken: anyio.Event) -> None:
        await woken.wait()
        happened.append(f"woke {n}")  # what a fire sets in motion: a compute, say

    async with anyio.create_task_group() as group:
        group.start_soon(wheel.run)
        for n in range(50):
            woken = anyio.Event()
            group.start_soon(timer, n, woken)
            group.start_soon(woken_by, n, woken)
        await clock.advance_to(159.9)
        assert happened == []
        await clock.advance_to(160.0)
        group.cancel_scope.cancel()
    assert happened == [f"fire {n}" for n in range(50)] + [f"woke {n}" for n in range(50)]


async def test_a_cancelled_timer_never_fires_and_a_sooner_instant_is_kept() -> None:
    clock = SteppedClock()
    wheel = WallWheel(clock)
    fired: list[str] = []
    cancelled = anyio.CancelScope()

    async def cancelled_timer() -> None:
        with cancelled:
            await wheel.at(WALL + 30, lambda: fired.append("cancelled"))

    async with anyio.create_task_group() as group:
        group.start_soon(wheel.run)
        group.start_soon(cancelled_timer)
        group.start_soon(wheel.at, WALL + 50, lambda: fired.append("at 50"))
        await anyio.wait_all_tasks_blocked()  # the wheel sleeps toward WALL + 30
        cancelled.cancel()
        group.start_soon(wheel.at, WALL + 10, lambda: fired.append("at 10"))
        await anyio.wait_all_tasks_blocked()
        await clock.advance_to(110)
        assert fired == ["at 10"]
        await clock.advance_to(150)
        assert fired == ["at 10", "at 50"]
        group.cancel_scope.cancel()


async def test_the_wall_clock_set_forward_fires_what_it_passed_and_set_back_nothing_early() -> None:
    clock = SteppedClock()
    wheel = WallWheel(clock)
    fired: list[float] = []
    async with anyio.create_task_group() as group:
        group.start_soon(wheel.run)
        for offset in (3600, 7200):
            group.start_soon(wheel.at, WALL + offset, lambda o=offset: fired.append(o))
        await anyio.wait_all_tasks_blocked()
        await clock.set_wall(WALL + 3600)  # the machine woke an hour later
        await clock.advance_to(clock.time + 59)
        assert fired == []  # the wheel looks at the wall clock again a minute after it last did
        await clock.advance_to(clock.time + 1)
        assert fired == [3600]
        await clock.set_wall(WALL)  # set back: 7200 is two hours off again
        await clock.advance_to(clock.time + 7199)
        assert fired == [3600]
        await clock.advance_to(clock.time + 1)
        assert fired == [3600, 7200]
        group.cancel_scope.cancel()


def test_urgent_marks_noted_together_are_written_as_one_at_the_end() -> None:
    posted: list[SetMarks] = []
    marks = MarkBuffer(posted.append, {})
    marks.tick("alone", "cron 0 * * * * UTC", 60.0, WALL)
    assert posted == [SetMarks({"tick alone cron 0 * * * * UTC": WALL * 1000})]
    posted.clear()
    with marks.together():
        for sense in ("a", "b"):
            marks.tick(sense, "cron 0 * * * * UTC", 60.0, WALL)
        with marks.together():  # inside another: the outer one writes
            marks.start("c", WALL + 1)
        assert posted == []
        assert marks.known[start_key("c")] == (WALL + 1) * 1000  # known at once all the same
    assert posted == [
        SetMarks(
            {
                "tick a cron 0 * * * * UTC": WALL * 1000,
                "tick b cron 0 * * * * UTC": WALL * 1000,
                start_key("c"): (WALL + 1) * 1000,
            }
        )
    ]
