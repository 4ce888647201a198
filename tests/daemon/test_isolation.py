"""A sense can raise, hang, print, return garbage or kill its worker: the rest goes on."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable
from pathlib import Path

import anyio
import psutil
import pytest

from nerve_core import LogType, WorkerState, parse_nerve_config
from nerve_daemon.kernel import Kernel, KernelOptions
from nerve_daemon.senses.group import OutcomeKind
from nerve_daemon.supervise.policy import GroupPolicy

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio

RETURN_ONE = "def compute(ctx):\n    return 1\n"


async def test_a_raising_sense_logs_its_error_with_traceback_and_keeps_running(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  flaky: {}\nreflexes:\n  - sense: flaky\n    interval: 100ms\n",
        {"flaky": "def compute(ctx):\n    raise ValueError('disk on fire')\n"},
    )
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: len(recorder.of(LogType.COMPUTE_ERROR, "flaky")) >= 3)
        pid = kernel.groups["default"].worker.pid  # type: ignore[union-attr]
    row = recorder.of(LogType.COMPUTE_ERROR, "flaky")[0]
    assert row.payload["error"] == "ValueError: disk on fire"
    assert "senses/flaky/compute.py" in row.payload["traceback"]
    assert {r.payload["pid"] for r in recorder.of(LogType.WORKER_START)} == {pid}  # never restarted


async def test_a_hanging_sense_times_out_and_its_group_mate_goes_on_on_a_new_worker(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          stuck: {timeout: 500ms}
          healthy: {}
        reflexes:
          - sense: healthy
            interval: 100ms
        """,
        {"stuck": "import time\ndef compute(ctx):\n    time.sleep(60)\n", "healthy": RETURN_ONE},
    )
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "healthy"))
        first_pid = kernel.groups["default"].worker.pid  # type: ignore[union-attr]
        kernel.trigger_sense("stuck")
        await wait_until(lambda: recorder.of(LogType.COMPUTE_TIMEOUT, "stuck"))
        before = len(recorder.of(LogType.SIGNAL, "healthy"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "healthy")) >= before + 3)
        second_pid = kernel.groups["default"].worker.pid  # type: ignore[union-attr]
    assert recorder.of(LogType.COMPUTE_TIMEOUT, "stuck")[0].payload["timeout_s"] == 0.5
    exits = recorder.of(LogType.WORKER_EXIT)
    assert exits[0].payload["reason"] == "timeout"
    assert exits[0].payload["code"] == -signal.SIGKILL
    assert second_pid != first_pid
    assert (
        not psutil.pid_exists(first_pid)
        or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
    )


async def test_what_a_sense_prints_goes_to_the_daemon_log_and_never_into_the_protocol(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  chatty: {group: talk}\n",
        {
            "chatty": (
                "import sys\n"
                "def compute(ctx):\n"
                '    print(\'{"t": "result", "id": 1, "ok": true}\')\n'
                "    print('to stderr', file=sys.stderr)\n"
                "    return {'fine': True}\n"
            )
        },
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("chatty")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "chatty"))
        await wait_until(lambda: len(recorder.output) >= 2)
    assert recorder.of(LogType.SIGNAL, "chatty")[0].payload == {"fine": True}
    assert ("group:talk", '{"t": "result", "id": 1, "ok": true}') in recorder.output
    assert ("group:talk", "to stderr") in recorder.output


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("{1, 2}", "not JSON-serialisable"),
        ("float('nan')", "NaN or infinity"),
        ("{'x': [float('inf')]}", "NaN or infinity"),
        ("b'bytes'", "not JSON-serialisable"),
        ("{1: 'int key'}", "not JSON-serialisable"),
        ("'x' * (2 << 20)", "the limit is"),
    ],
)
async def test_a_return_that_is_not_json_is_a_compute_error_that_says_so(
    ws: Callable[..., Path], returned: str, message: str
) -> None:
    root = ws("senses:\n  odd: {}\n", {"odd": f"def compute(ctx):\n    return {returned}\n"})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("odd")
        await wait_until(lambda: recorder.of(LogType.COMPUTE_ERROR, "odd"))
    assert message in recorder.of(LogType.COMPUTE_ERROR, "odd")[0].payload["error"]
    assert recorder.of(LogType.SIGNAL) == []


async def test_a_cyclic_return_is_a_compute_error(ws: Callable[..., Path]) -> None:
    root = ws(
        "senses:\n  loop: {}\n",
        {"loop": "def compute(ctx):\n    a = []\n    a.append(a)\n    return a\n"},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("loop")
        await wait_until(lambda: recorder.of(LogType.COMPUTE_ERROR, "loop"))


async def test_a_worker_killed_from_outside_is_respawned_and_computes_go_on(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  steady: {}\nreflexes:\n  - sense: steady\n    interval: 100ms\n",
        {"steady": RETURN_ONE},
    )
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "steady"))
        group = kernel.groups["default"]
        first = group.worker.pid  # type: ignore[union-attr]
        os.kill(first, signal.SIGKILL)
        await wait_until(
            lambda: (
                group.worker is not None
                and group.worker.pid != first
                and group.state is WorkerState.RUNNING
            )
        )
        before = len(recorder.of(LogType.SIGNAL, "steady"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "steady")) >= before + 3)
    exit_row = recorder.of(LogType.WORKER_EXIT)[0]
    assert (exit_row.payload["pid"], exit_row.payload["reason"], exit_row.payload["code"]) == (
        first,
        "crash",
        -signal.SIGKILL,
    )
    assert group.restarts >= 1


async def test_a_worker_dying_mid_compute_logs_a_crash_and_the_queue_survives(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  bomb: {}\n  after: {}\n",
        {"bomb": "import os\ndef compute(ctx):\n    os._exit(7)\n", "after": RETURN_ONE},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("bomb")
        kernel.trigger_sense("after")  # queued behind the bomb in the same group
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "after"))
    [crash] = recorder.of(LogType.COMPUTE_CRASH, "bomb")
    assert "code 7" in crash.payload["detail"]
    kinds = [outcome.kind for _, outcome in recorder.computes_of("bomb")]
    assert kinds == [OutcomeKind.CRASH]


async def test_a_crash_loop_stops_respawning_and_the_kernel_stays_healthy(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          doomed: {group: broken}
          fine: {group: good}
        reflexes:
          - sense: fine
            interval: 100ms
        """,
        {"doomed": "import os\nos._exit(1)\n", "fine": RETURN_ONE},
    )
    async with running(root) as (kernel, recorder):
        await wait_until(lambda: kernel.groups["broken"].state is WorkerState.FATAL)
        assert recorder.of(LogType.WORKER_CRASH_LOOP)[0].payload["group"] == "broken"
        health = {w.name: w.state for w in kernel.health().workers}
        assert health == {"fork-server": "RUNNING", "broken": "FATAL", "good": "RUNNING"}
        exits = len(recorder.of(LogType.WORKER_EXIT))
        await anyio.sleep(0.5)
        assert len(recorder.of(LogType.WORKER_EXIT)) == exits  # no more respawns
        kernel.trigger_sense("doomed")  # answered at once: the group cannot run it
        before = len(recorder.of(LogType.SIGNAL, "fine"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "fine")) >= before + 2)
    assert exits == 5


async def test_a_sense_that_fails_to_load_is_its_own_error_not_its_groups_death(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        "senses:\n  broken: {}\n  works: {}\n",
        {"broken": "def compute(ctx)\n    return 1\n", "works": RETURN_ONE},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("works")
        kernel.trigger_sense("broken")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "works"))
        await wait_until(lambda: len(recorder.of(LogType.COMPUTE_ERROR, "broken")) == 2)
        states = {info.name: info.state for info in kernel.list_senses()}
        assert states == {"broken": "LOAD_ERROR", "works": "RUNNING"}
    load, run = recorder.of(LogType.COMPUTE_ERROR, "broken")
    assert load.payload["phase"] == "load"
    assert load.payload["error"].startswith("senses/broken/compute.py:1: SyntaxError")
    assert run.payload["error"] == load.payload["error"]


async def test_the_kernel_survives_workers_killed_at_any_moment_of_a_busy_stream(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          pulse: {}
          other: {}
        reflexes:
          - sense: pulse
            interval: 5ms
          - sense: other
            interval: 5ms
        """,
        {"pulse": RETURN_ONE, "other": RETURN_ONE},
    )
    policy = GroupPolicy(crash_window_s=0.01, backoff_first_s=0.0)  # every kill a first crash
    async with running(root, policy) as (kernel, recorder):
        group = kernel.groups["default"]
        for _ in range(15):
            await wait_until(
                lambda: (
                    group.worker is not None
                    and group.worker.alive
                    and group.state is WorkerState.RUNNING
                )
            )
            os.kill(group.worker.pid, signal.SIGKILL)  # type: ignore[union-attr]
            await anyio.sleep(0.03)
        before = len(recorder.of(LogType.SIGNAL, "pulse"))
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "pulse")) >= before + 5)
    assert len(recorder.of(LogType.WORKER_EXIT)) >= 15
    assert recorder.of(LogType.WORKER_CRASH_LOOP) == []


async def test_one_group_runs_one_compute_at_a_time(ws: Callable[..., Path]) -> None:
    root = ws(
        "senses:\n  first: {}\n  second: {}\n  third: {}\n",
        dict.fromkeys(
            ("first", "second", "third"),
            "import time\ndef compute(ctx):\n    time.sleep(0.2)\n    return 1\n",
        ),
    )
    async with running(root) as (kernel, recorder):
        for name in ("first", "second", "third"):
            kernel.trigger_sense(name)
        await wait_until(lambda: len(recorder.computes) == 3)
    spans = sorted(
        (
            outcome.result.started_mono,
            outcome.result.started_mono + outcome.result.duration_ms / 1000,
        )  # type: ignore[union-attr]
        for _, _, outcome in recorder.computes
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # no two computes of one group overlap


def test_the_first_exit_in_a_window_respawns_at_once_then_backoff_grows_until_a_crash_loop() -> (
    None
):
    from nerve_daemon.supervise.policy import CrashHistory

    history = CrashHistory(
        GroupPolicy(crash_limit=5, crash_window_s=60, backoff_first_s=0.1, backoff_max_s=0.3)
    )
    assert [history.record(t) for t in (0, 1, 2, 3)] == [0.0, 0.1, 0.2, 0.3]
    assert history.record(4) is None  # the fifth within 60 s
    fresh = CrashHistory(GroupPolicy(crash_limit=5, crash_window_s=60))
    assert [fresh.record(t) for t in (0, 100, 200)] == [0.0, 0.0, 0.0]  # far apart: never a loop


async def test_a_stop_waits_one_shared_deadline_not_one_per_part(ws: Callable[..., Path]) -> None:
    """Four groups each stuck in a long compute: the stop is bounded by stop_timeout_s once,
    not four times over."""
    stuck = "import time\n\ndef compute(ctx):\n    print('stuck', flush=True)\n    time.sleep(60)\n"
    names = ["a", "b", "c", "d"]
    config = "senses:\n" + "".join(f"  {n}: {{group: {n}, timeout: 120s}}\n" for n in names)
    root = ws(config, dict.fromkeys(names, stuck))
    printed: list[str] = []
    options = KernelOptions(
        group_policy=GroupPolicy(stop_timeout_s=2.0),
        stop_timeout_s=2.0,
        on_output=lambda _, line: printed.append(line),
    )
    kernel = Kernel(parse_nerve_config((root / "nerve.yaml").read_text()).value, root, options)
    async with anyio.create_task_group() as group:
        await group.start(kernel.run)
        for name in names:
            kernel.trigger_sense(name)
        await wait_until(lambda: printed.count("stuck") == len(names))
        began = anyio.current_time()
        kernel.stop()
        with anyio.fail_after(60):
            await kernel.stopped.wait()
        took = anyio.current_time() - began
    assert took < 2.0 * 2.5, took  # one deadline (and the kill after it), not 4 × 2 s


async def test_a_compute_timeout_is_enforced_within_a_bound_of_its_timeout(
    ws: Callable[..., Path],
) -> None:
    """`compute.timeout` comes after the timeout, and not much after: measured from the moment
    the compute announced itself (just after it started) to the row."""
    root = ws(
        "senses:\n  stuck: {timeout: 1s}\n",
        {
            "stuck": "import time\ndef compute(ctx):\n    print('stuck begins', flush=True)\n    time.sleep(60)\n"
        },
    )
    seen: dict[str, float] = {}
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("stuck")
        await wait_until(lambda: ("group:default", "stuck begins") in recorder.output)
        seen["began"] = anyio.current_time()  # a little after the compute started
        await wait_until(lambda: recorder.of(LogType.COMPUTE_TIMEOUT, "stuck"))
        seen["timed_out"] = anyio.current_time()  # within 20 ms of the row (polled)
    elapsed = seen["timed_out"] - seen["began"]
    assert 0.8 <= elapsed <= 1.0 + 2.0, elapsed  # not early, and never several timeouts late


async def test_timeouts_replace_the_worker_but_never_make_a_crash_loop(
    ws: Callable[..., Path],
) -> None:
    """Six computes over their timeout in a row: six fresh workers, none counted as a crash (5
    crashes within a minute would be a loop and stop the group)."""
    hangs = "import time\ndef compute(ctx):\n    time.sleep(30)\n"
    root = ws("senses:\n  stuck: {timeout: 200ms}\n", {"stuck": hangs})
    async with running(root) as (kernel, recorder):
        group = kernel.groups["default"]
        for n in range(1, 7):
            kernel.trigger_sense("stuck")
            await wait_until(lambda n=n: len(recorder.of(LogType.WORKER_EXIT)) == n)
            await wait_until(lambda n=n: group.restarts == n and group.state is WorkerState.RUNNING)
        exits = [row.payload["reason"] for row in recorder.of(LogType.WORKER_EXIT)]
    assert exits == ["timeout"] * 6
    assert len(recorder.of(LogType.COMPUTE_TIMEOUT, "stuck")) == 6
    assert recorder.of(LogType.WORKER_CRASH_LOOP) == []
