"""Delayed triggers in a kernel: what a start does with the timers a previous kernel left (a
workflow timer whose run exists already is not launched twice; a timer whose target left
nerve.yaml fails saying so), the bound on pending timers, and explain naming a sense's timers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_daemon.timing import delayed
from nerve_daemon.timing.delayed import TooManyTimers
from nerve_store import AddTimer, CreateRun, LogStore, now_ms

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

ONE = "def compute(ctx):\n    return ctx.trigger\n"


def timers_of(root: Path) -> dict[str, tuple[str, str | None]]:
    with LogStore.open_readonly(root / "data/logs.db") as store, store.engine.connect() as c:
        rows = c.exec_driver_sql("SELECT timer_id, status, outcome FROM timers").all()
    return {timer_id: (status, outcome) for timer_id, status, outcome in rows}


async def test_timers_left_by_a_previous_kernel_fire_once_and_a_gone_target_fails(
    ws: Callable[..., Path],
) -> None:
    """A previous kernel died after it launched the run of timer `d-1-1` but before it marked
    the timer fired: the next start marks it fired with that run, and launches nothing."""
    root = ws("senses:\n  a: {}\nworkflows:\n  slow: {}\n", {"a": ONE}, workflows={"slow": SLEEPER})
    past = now_ms() - 5_000
    with LogStore.open(root / "data/logs.db") as store:
        store.apply(
            [
                AddTimer("d-1-1", "workflow", "slow", past, past - 1000, {"prompt": "0"}),
                CreateRun("r-launched", "slow", "0", 5, "timer", cause="d-1-1"),
                AddTimer("d-1-2", "sense", "gone", past, past - 1000),
                AddTimer("d-1-3", "sense", "a", past + 1, past - 1000),
                AddTimer("d-1-4", "workflow", "nope", past + 2, past - 1000),
            ]
        )
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: "pending" not in {s for s, _ in timers_of(root).values()})
        await wait_until(lambda: kernel.list_senses()[0].computes == 1)
    assert timers_of(root) == {
        "d-1-1": ("fired", "r-launched"),
        "d-1-2": ("failed", 'no sense "gone" in nerve.yaml any more'),
        "d-1-3": ("fired", "ran"),
        "d-1-4": ("failed", 'no workflow "nope" in nerve.yaml any more'),
    }
    with LogStore.open_readonly(root / "data/logs.db") as store:
        assert [run.run_id for run in store.runs()] == ["r-launched"]  # not launched twice
    assert [row.cause for row in recorder.of("signal", "a")] == ["d-1-3"]


async def test_pending_timers_are_bounded_and_explain_names_a_senses_timers(
    ws: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delayed, "MAX_PENDING", 2)
    root = ws("senses:\n  a: {}\n", {"a": ONE})
    due = (int(time.time()) + 3600) * 1000
    async with running(root) as (kernel, _):
        first = await kernel.delay("sense", "a", due)
        await kernel.delay("sense", "a", due + 1)
        with pytest.raises(TooManyTimers, match="2 delayed triggers are pending already"):
            await kernel.delay("sense", "a", due + 2)
        explained = await kernel.explain("sense", "a")
        assert explained["now"]["delayed"][0] == {"timerId": first.timer_id, "due": due}
        assert len(explained["now"]["delayed"]) == 2
        await kernel.cancel_timer(first.timer_id)
        await kernel.delay("sense", "a", due + 3)  # room again
        assert len(kernel.delayed.pending()) == 2
    assert sorted(status for status, _ in timers_of(root).values()) == [
        "cancelled",
        "pending",
        "pending",
    ]


async def test_a_run_a_delayed_trigger_launched_explains_its_timer(
    ws: Callable[..., Path],
) -> None:
    root = ws("workflows:\n  slow: {}\n", {}, workflows={"slow": SLEEPER})
    async with running(root) as (kernel, _):
        timer = await kernel.delay("workflow", "slow", now_ms() - 1, ("0", None, None))
        await wait_until(lambda: timers_of(root).get(timer.timer_id, ("",))[0] == "fired")
        run_id = timers_of(root)[timer.timer_id][1]
        assert run_id is not None
        explained = await kernel.explain("run", run_id.split()[0])
    assert explained["origin"] == "timer"
    assert explained["cause"] == timer.timer_id
    assert explained["chain"] == [
        {
            "step": "timer",
            "timer": timer.timer_id,
            "what": "a delayed `nerve workflow trigger --in/--at` (or the socket's) that came due",
        }
    ]


def test_every_kind_of_trigger_but_a_signal_can_be_the_root_of_a_chain() -> None:
    from nerve_core import TriggerKind
    from nerve_daemon.explain.lineage import _ROOTS

    assert set(_ROOTS) == set(TriggerKind) - {TriggerKind.SIGNAL}
