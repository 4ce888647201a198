"""A sense that kills its worker at every compute (`os.abort()`) does not take its group down:
it is parked after 3 kills, with the reason and the `@sense.parked` signal, while its group-mate
keeps >= 95 % of its computes; its worker never counts as crash-looping; it comes back after its
cool-down (and is parked again as it kills again) and for good once its code is fixed. `make
faults` runs it for 10 minutes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from nerve_core import LogType, WorkerState
from nerve_daemon.senses.group import OutcomeKind
from nerve_daemon.supervise.policy import GroupPolicy

from ..daemon.conftest import running, wait_until
from ..scale import scaled
from .conftest import RETURN_ONE, Figure

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ABORTS = "import os\n\ndef compute(ctx):\n    os.abort()\n"
CONFIG = """
senses:
  bad: {group: shared}
  good: {group: shared}
  pager: {group: elsewhere}
reflexes:
  - sense: pager
    on: ["@sense.parked"]
  - sense: bad
    interval: 500ms
  - sense: good
    interval: 100ms
"""
SECONDS = scaled(10, 600)  # how long the group-mate is watched
COOLDOWN = scaled(3, 60)


async def test_a_sense_that_kills_its_worker_is_parked_and_its_group_mate_computes_on(
    ws: Callable[..., Path], figure: Figure
) -> None:
    pager = "def compute(ctx):\n    return {'parked': ctx.signal.payload['source']}\n"
    root = ws(CONFIG, {"bad": ABORTS, "good": RETURN_ONE, "pager": pager})
    policy = GroupPolicy(
        backoff_first_s=0.05, backoff_max_s=0.2, stop_timeout_s=5.0, park_cooldown_s=COOLDOWN
    )
    async with running(root, policy, watch_files=False) as (kernel, recorder):
        began = time.monotonic()
        await wait_until(lambda: recorder.of(LogType.SENSE_PARKED, "bad"), timeout=30)
        parked_after = time.monotonic() - began
        first = recorder.of(LogType.SENSE_PARKED, "bad")[0].payload
        assert (first["group"], first["kills"]) == ("shared", 3)
        assert first["lastExit"] == "worker exited with code -6"  # SIGABRT
        expected = {"bad": "PARKED", "good": "RUNNING", "pager": "RUNNING"}
        await wait_until(  # its worker respawned at once after the third kill
            lambda: {s.name: s.state for s in kernel.list_senses()} == expected
        )
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "pager"))  # @sense.parked heard
        assert recorder.of(LogType.SIGNAL, "pager")[0].payload == {"parked": "bad"}
        explained = await kernel.explain("sense", "bad", why_not=True)
        assert any(line.startswith("it is parked") for line in explained["whyNot"]["answer"])

        watched_from = time.monotonic()
        await anyio.sleep(SECONDS)  # the figure is what happens over this span: no condition
        watched_to = time.monotonic()
        good = [
            outcome.result.started_mono
            for _, outcome in recorder.computes_of("good")
            if outcome.kind is OutcomeKind.OK and outcome.result is not None
        ]
        done = sum(1 for at in good if watched_from <= at < watched_to)
        share = done / (SECONDS / 0.1)
        assert share >= 0.95, f"the group-mate computed {share:.1%} of its ticks"
        assert kernel.groups["shared"].state is WorkerState.RUNNING
        assert recorder.of(LogType.WORKER_CRASH_LOOP) == []  # a sense's kills are not the group's
        assert kernel.ledger.counts("bad").get("parked", 0) > 0  # its ticks decided `parked`
        # Its cool-downs ended and it was parked again as it killed again (the last may be
        # between the two now).
        cooled = list(recorder.of(LogType.SENSE_UNPARKED, "bad"))
        assert cooled, "no cool-down ended"
        assert all(r.payload["why"] == "its cool-down ended" for r in cooled)
        assert len(recorder.of(LogType.SENSE_PARKED, "bad")) - len(cooled) in (0, 1)
        kills = sum(1 for _, o in recorder.computes_of("bad") if o.kind is OutcomeKind.CRASH)

        (root / "senses/bad/compute.py").write_text("def compute(ctx):\n    return 'fixed'\n")
        await kernel.files_changed({Path("senses/bad/compute.py")})
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "bad"), timeout=30)
        last = recorder.of(LogType.SENSE_UNPARKED, "bad")[-1].payload
        assert last["why"] == "its group was reloaded: its code or config changed"
    figure(
        "a sense that aborts its worker at every compute, beside a group-mate @100 ms",
        f"parked after 3 kills ({parked_after:.1f} s); over {SECONDS} s its group-mate computed "
        f"{share:.1%} of its ticks; {len(cooled)} cool-downs of {COOLDOWN} s ended, each "
        f"re-parked as it killed again ({kills} kills in all); never FATAL; back once its code "
        "was fixed",
    )
