"""Scheduling semantics through the embedded kernel, with real workers and real time."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from nerve_core import LogType, TriggerKind
from nerve_daemon.senses.ledger import Reason
from nerve_daemon.senses.scheduler import Decision
from nerve_daemon.timing.grids import SPREAD_S, phase

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio

RETURN_ONE = "def compute(ctx):\n    return 1\n"


async def test_interval_reflexes_fire_at_start_then_on_a_drift_free_grid(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          tick: {}
        reflexes:
          - sense: tick
            interval: 200ms
        """,
        {"tick": "import time\ndef compute(ctx):\n    time.sleep(0.05)\n    return ctx.trigger\n"},
    )
    async with running(root) as (_, recorder):
        await wait_until(lambda: len(recorder.computes_of("tick")) >= 6)
    computes = recorder.computes_of("tick")
    kinds = [trigger.kind for trigger, _ in computes]
    assert kinds[0] is TriggerKind.STARTUP
    assert set(kinds[1:]) == {TriggerKind.INTERVAL}
    scheduled = [trigger.scheduled for trigger, _ in computes]
    assert all(s is not None for s in scheduled)
    # Every tick is on the sense's grid anchored on the epoch (k × 200 ms + its phase), so a
    # restarted daemon finds the same grid, and the 50 ms computes do not push it.
    offsets = [(s - phase("tick", 0.2)) / 0.2 for s in scheduled[1:]]  # type: ignore[operator]
    assert all(abs(k - round(k)) < 1e-4 for k in offsets)
    steps = [round(b - a) for a, b in itertools.pairwise(offsets)]
    assert all(step >= 1 for step in steps)
    assert abs(time.time() - scheduled[0]) < 60  # type: ignore[operator]  # wall time
    assert [row.payload for row in recorder.of(LogType.SIGNAL, "tick")][:2] == [
        "startup",
        "interval",
    ]


async def test_an_on_reflex_runs_its_sense_with_the_signal_in_another_group(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          source: {group: one}
          follower: {group: two}
          bystander: {group: two}
        reflexes:
          - sense: follower
            on: [source]
        """,
        {
            "source": "def compute(ctx):\n    return {'n': 7}\n",
            "follower": (
                "def compute(ctx):\n"
                "    return {'trigger': ctx.trigger, 'from': ctx.signal.source,\n"
                "            'got': ctx.signal.payload, 'signal_id': ctx.signal.id}\n"
            ),
            "bystander": RETURN_ONE,
        },
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("source")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "follower"))
    [source_row] = recorder.of(LogType.SIGNAL, "source")
    [follower_row] = recorder.of(LogType.SIGNAL, "follower")
    assert follower_row.payload == {
        "trigger": "signal",
        "from": "source",
        "got": {"n": 7},
        "signal_id": source_row.ref_id,
    }
    assert recorder.computes_of("bystander") == []
    assert len(recorder.computes_of("source")) == 1  # its own signal did not trigger it


async def test_a_signal_triggers_its_own_sense_only_when_a_reflex_lists_it(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          countdown: {}
        reflexes:
          - sense: countdown
            on: [countdown]
        """,
        {
            "countdown": (
                "def compute(ctx):\n"
                "    left = 3 if ctx.signal is None else ctx.signal.payload - 1\n"
                "    return left if left > 0 else None\n"
            )
        },
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("countdown")
        await wait_until(lambda: len(recorder.computes_of("countdown")) == 4)
        await anyio.sleep(0.3)
    assert [row.payload for row in recorder.of(LogType.SIGNAL, "countdown")] == [3, 2, 1]
    assert len(recorder.computes_of("countdown")) == 4  # the last returned None: no signal


async def test_triggers_inside_the_throttle_window_run_once_at_its_end(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  slowpoke:\n    throttle: 1s\n",
        {"slowpoke": "import time\ndef compute(ctx):\n    return time.monotonic()\n"},
    )
    async with running(root) as (kernel, recorder):
        decisions = [kernel.trigger_sense("slowpoke")]
        await wait_until(lambda: len(recorder.computes_of("slowpoke")) == 1)
        decisions += [kernel.trigger_sense("slowpoke") for _ in range(5)]
        await wait_until(lambda: len(recorder.computes_of("slowpoke")) == 2)
        await anyio.sleep(1.3)
    assert decisions[0] is Decision.RAN
    assert decisions[1] is Decision.THROTTLED
    assert set(decisions[2:]) == {Decision.COALESCED}
    [sense] = kernel.state().senses  # the one read model: its decisions, by reason
    assert sense.decisions == {
        Reason.RAN: 1,
        Reason.THROTTLED: 1,
        Reason.COALESCED: 4,
        Reason.MERGED: 4,  # each coalesced trigger took the place of the one pending before it
        Reason.COMPLETED: 2,
    }
    starts = [outcome.result.started_mono for _, outcome in recorder.computes_of("slowpoke")]  # type: ignore[union-attr]
    assert len(starts) == 2
    assert starts[1] - starts[0] >= 0.99


async def test_triggers_while_one_is_in_flight_coalesce_into_one_pending(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  busy: {}\n",
        {
            "busy": "import time\ndef compute(ctx):\n    print('busy begins', flush=True)\n    time.sleep(0.4)\n    return 1\n"
        },
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("busy")
        await wait_until(lambda: ("group:default", "busy begins") in recorder.output)
        assert recorder.computes == []  # the first compute is in flight now, not done
        decisions = [kernel.trigger_sense("busy") for _ in range(10)]
        await wait_until(lambda: len(recorder.computes_of("busy")) == 2)
        await anyio.sleep(0.6)
    assert set(decisions) == {Decision.COALESCED}
    assert len(recorder.computes_of("busy")) == 2


async def test_triggers_before_the_grace_period_are_held_and_run_once_at_its_end(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          patient:
            grace_period: 1s
        reflexes:
          - sense: patient
            interval: 1h
        """,
        {"patient": "def compute(ctx):\n    return ctx.trigger\n"},
    )
    async with running(root) as (kernel, recorder):
        started = anyio.current_time()
        decisions = [kernel.trigger_sense("patient") for _ in range(3)]
        await wait_until(lambda: recorder.computes_of("patient"))
        await anyio.sleep(0.5)
    assert set(decisions) == {Decision.HELD_BY_GRACE}
    [(trigger, outcome)] = recorder.computes_of("patient")
    assert outcome.result is not None
    assert outcome.result.started_mono - started >= 0.95
    assert trigger.kind is TriggerKind.STARTUP  # the newest of the held triggers' details win
    held = [e for e in kernel.ledger.recent("patient") if e.reason == "merged"]
    assert len(held) == 3  # each held trigger merged into the next, the last into the tick
    assert held[-1].into == trigger.id


async def test_a_manual_trigger_of_an_unknown_sense_is_refused(ws: Callable[..., Path]) -> None:
    from nerve_daemon.kernel import UnknownSense

    root = ws("senses:\n  a: {}\n", {"a": RETURN_ONE})
    async with running(root) as (kernel, _):
        with pytest.raises(UnknownSense, match='no sense "b"'):
            kernel.trigger_sense("b")


def test_interval_grids_are_spread_by_a_phase_stable_for_each_sense() -> None:
    phases = [phase(f"s{n}", 1.0) for n in range(500)]
    assert all(0 <= p < 1.0 for p in phases)
    assert phases == [phase(f"s{n}", 1.0) for n in range(500)]  # the same at every start
    per_tenth = [sum(1 for p in phases if k / 10 <= p < (k + 1) / 10) for k in range(10)]
    assert min(per_tenth) >= 30  # about 50 in each tenth of the second, none empty
    assert all(phase(f"s{n}", 0.1) < 0.1 for n in range(50))  # within a short interval
    assert max(phase(f"s{n}", 3600.0) for n in range(500)) < SPREAD_S  # at most 1 s later
