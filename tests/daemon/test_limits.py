"""Resource limits per group: a worker over its memory or CPU limit is restarted and logged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, WorkerState

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio

LEAKY = """
hoard = []

def compute(ctx):
    hoard.append(bytearray(64 * 1024 * 1024))  # 64 MB more on every compute, never freed
    for block in hoard:
        block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
    return len(hoard)
"""


async def test_a_worker_over_its_memory_limit_is_restarted_with_the_figure_logged(
    ws: Callable[..., Path],
) -> None:
    root = ws(
        """
        senses:
          leaky: {group: leaks}
        reflexes:
          - sense: leaky
            interval: 200ms
        groups:
          leaks:
            limits: {memory: 150MB}
        """,
        {"leaky": LEAKY},
    )

    def restarted_hoard() -> bool:
        limit_rows = recorder.of(LogType.WORKER_LIMIT)
        if not limit_rows:
            return False
        after = recorder.rows[recorder.rows.index(limit_rows[0]) :]
        return any(r.type == LogType.SIGNAL and r.payload == 1 for r in after)

    async with running(root) as (kernel, recorder):
        await wait_until(restarted_hoard, what="a fresh worker computing from an empty hoard")
        assert kernel.groups["leaks"].state is WorkerState.RUNNING
    limit = recorder.of(LogType.WORKER_LIMIT)[0].payload
    assert limit["resource"] == "memory"
    assert limit["limit"] == 150_000_000
    assert limit["value"] > 150_000_000
    exit_row = recorder.of(LogType.WORKER_EXIT)[0].payload
    assert exit_row["reason"] == "limit"
    assert "memory limit" in exit_row["detail"]
    assert recorder.of(LogType.WORKER_CRASH_LOOP) == []


async def test_a_worker_burning_cpu_past_its_limit_is_restarted(ws: Callable[..., Path]) -> None:
    root = ws(
        """
        senses:
          spinner: {group: hot, timeout: 1m}
        groups:
          hot:
            limits: {cpu_seconds: 500ms}
        """,
        {"spinner": "def compute(ctx):\n    while True:\n        pass\n"},
    )
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("spinner")
        await wait_until(lambda: recorder.of(LogType.WORKER_LIMIT))
        await wait_until(lambda: recorder.of(LogType.COMPUTE_CRASH, "spinner"))
    limit = recorder.of(LogType.WORKER_LIMIT)[0].payload
    assert limit["resource"] == "cpu_seconds"
    assert limit["value"] > 0.5
    assert "cpu_seconds limit" in recorder.of(LogType.COMPUTE_CRASH, "spinner")[0].payload["detail"]
