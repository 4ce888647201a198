"""Resource limits per group: a worker over its CPU limit is restarted and logged (the memory
limit is proven in tests/reliability/test_resources.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio


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
