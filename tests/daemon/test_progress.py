"""`ctx.progress(fraction, note)`: a compute's and a run's reports reach the state read model,
`list-senses`, `health` and explain while they run, and go when they end; bad values are the
compute's error, named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, Progress, decode_worker_message, encode_worker_message

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio

SLOW = """
import time
def compute(ctx):
    for step in range(1, 5):
        ctx.progress(step / 10, f"step {step}")  # paced: not every one reaches the kernel
    ctx.progress(0.4, "copying")
    time.sleep(0.2)  # past the pacing interval: the last report goes out
    ctx.progress(0.5, "copying")
    time.sleep(1.5)
    return 'done'
"""


async def test_a_computes_progress_is_shown_while_it_runs_and_gone_after(
    ws: Callable[..., Path],
) -> None:
    root = ws("senses:\n  slow: {}\n", {"slow": SLOW})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("slow")
        await wait_until(
            lambda: (info := kernel.list_senses()[0].progress) is not None and info.fraction == 0.5
        )
        [info] = kernel.list_senses()
        assert info.progress is not None
        assert info.progress.note == "copying"
        explained = await kernel.explain("sense", "slow")
        assert explained["now"]["running"]["progress"]["fraction"] == 0.5
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "slow"))
        assert kernel.list_senses()[0].progress is None  # the compute ended: its report went


async def test_a_bad_progress_value_is_the_computes_error_and_names_the_value(
    ws: Callable[..., Path],
) -> None:
    bad = "def compute(ctx):\n    ctx.progress(1.5, 'too far')\n    return 1\n"
    root = ws("senses:\n  bad: {}\n", {"bad": bad})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("bad")
        await wait_until(lambda: recorder.of(LogType.COMPUTE_ERROR, "bad"))
    [error] = recorder.of(LogType.COMPUTE_ERROR, "bad")
    assert error.payload["error"] == "ValueError: progress is a number from 0 to 1, got 1.5"


HALFWAY = """
import anyio
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "halfway" if thread[-1].role == START else END

async def halfway(ctx):
    ctx.progress(0.5, "half done")
    await anyio.sleep(1.5)
    return "done"

definition = WorkflowDefinition(moderator=moderator, roles={"halfway": halfway})
"""


async def test_a_runs_progress_is_in_health_and_explain_until_it_ends(
    ws: Callable[..., Path],
) -> None:
    root = ws("workflows:\n  w: {}\n", {}, workflows={"w": HALFWAY})
    async with running(root) as (kernel, recorder):
        run_id, _ = await kernel.trigger_workflow("w")
        await wait_until(lambda: run_id in kernel.health().run_progress)
        info = kernel.health().run_progress[run_id]
        assert (info.fraction, info.note) == (0.5, "half done")
        explained = await kernel.explain("run", run_id)
        assert explained["progress"]["note"] == "half done"
        await wait_until(lambda: "completed" in recorder.statuses(run_id))
        assert kernel.health().run_progress == {}


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b'{"t":"progress","of":"a","fraction":2,"note":""}', "got 2"),
        (b'{"t":"progress","of":"a","fraction":"half","note":""}', "got str"),
        (b'{"t":"progress","of":"a","fraction":NaN,"note":""}', "malformed"),
    ],
)
def test_a_progress_message_out_of_bounds_is_a_protocol_error(line: bytes, error: str) -> None:
    decoded = decode_worker_message(line)
    assert not decoded.ok
    assert error in decoded.error


def test_a_progress_message_round_trips_and_a_long_note_is_clipped() -> None:
    message = Progress("a", 0.25, "n" * 500)
    decoded = decode_worker_message(encode_worker_message(message))
    assert decoded.ok
    assert decoded.value == Progress("a", 0.25, "n" * 199 + "…")


def test_progress_updates_are_paced_to_ten_a_second_but_done_always_goes_out() -> None:
    from nerve_daemon.supervise.worker_runtime import ProgressPacer

    pacer = ProgressPacer(every_s=0.1)
    assert pacer.due("a", 0.1) is True  # the first goes out
    assert pacer.due("a", 0.2) is False  # within 0.1 s of it: held back
    assert pacer.due("b", 0.2) is True  # another compute or run paces on its own
    assert pacer.due("a", 1.0) is True  # done always goes out
