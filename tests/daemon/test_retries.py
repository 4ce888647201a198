"""Retries (`retry:`): a sense's compute that raises or times out is tried again after a growing,
jittered backoff until its attempts are spent; a workflow's role that raises is tried again
before its run fails. Each try is logged and counted."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import LogType, RetryConfig, RunStatus
from nerve_daemon.senses.ledger import Reason
from nerve_daemon.senses.retries import backoff
from nerve_store import LogStore

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio

# Raises on its first `FAILS` computes (counted in a file beside its database), then returns.
FLAKY = """
from pathlib import Path

def compute(ctx):
    tries = Path(__file__).with_name("tries")
    count = int(tries.read_text()) + 1 if tries.exists() else 1
    tries.write_text(str(count))
    if count <= {fails}:
        raise RuntimeError(f"try {{count}} failed")
    return {{"try": count, "trigger": ctx.trigger}}
"""


def test_the_backoff_doubles_up_to_its_bound_and_is_jittered_down_by_half_at_most() -> None:
    retry = RetryConfig(attempts=10, backoff=1.0, max_backoff=5.0)
    assert [backoff(retry, n, lambda: 1.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [backoff(retry, n, lambda: 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 2.5, 2.5]


async def test_a_failing_compute_is_retried_with_backoff_until_it_succeeds(
    ws: Callable[..., Path],
) -> None:
    config = "senses:\n  flaky:\n    retry: {attempts: 3, backoff: 400ms, max_backoff: 1s}\n"
    root = ws(config, {"flaky": FLAKY.format(fails=2)})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("flaky")
        await wait_until(lambda: recorder.of(LogType.SIGNAL, "flaky"), timeout=30)
        counts = kernel.ledger.counts("flaky")
    errors = recorder.of(LogType.COMPUTE_ERROR, "flaky")
    [signal] = recorder.of(LogType.SIGNAL, "flaky")
    assert [row.payload.get("attempt") for row in errors] == [None, 2]  # each try logged
    assert signal.payload == {"try": 3, "trigger": "manual"}  # the third try, same trigger kind
    assert errors[0].payload["error"] == "RuntimeError: try 1 failed"
    assert (counts[Reason.RETRIED], counts[Reason.FAILED], counts[Reason.COMPLETED]) == (2, 2, 1)
    # The waits: 400 ms then 800 ms, each jittered down by up to half (plus a compute's time).
    first, second = (later.ts - row.ts for row, later in itertools.pairwise([*errors, signal]))
    assert 200 <= first <= 400 + 600
    assert 400 <= second <= 800 + 600
    retried = [entry for entry in kernel.ledger.recent("flaky") if entry.reason is Reason.RETRIED]
    assert [entry.detail[:21] for entry in retried if entry.detail] == [
        "attempt 2 as trigger ",
        "attempt 3 as trigger ",
    ]


async def test_a_compute_that_keeps_failing_stops_after_its_attempts(
    ws: Callable[..., Path],
) -> None:
    config = "senses:\n  flaky:\n    retry: {attempts: 2, backoff: 100ms, max_backoff: 100ms}\n"
    root = ws(config, {"flaky": FLAKY.format(fails=99)})
    async with running(root) as (kernel, recorder):
        kernel.trigger_sense("flaky")
        await wait_until(lambda: len(recorder.of(LogType.COMPUTE_ERROR, "flaky")) == 2)
        kernel.trigger_sense("flaky")  # a new trigger: its own tries
        await wait_until(lambda: len(recorder.of(LogType.COMPUTE_ERROR, "flaky")) == 4)
        assert kernel.retries.scheduled == 2  # one retry for each trigger, no third try
    attempts = [row.payload.get("attempt") for row in recorder.of(LogType.COMPUTE_ERROR)]
    assert attempts == [None, 2, None, 2]


ROLE_RETRY = """
from pathlib import Path
from nerve_core.workflow import END, START, WorkflowDefinition

def moderator(thread):
    return "flaky" if thread[-1].role == START else END

def flaky(ctx):
    tries = Path(__file__).with_name("tries-" + ctx.run_id)
    count = int(tries.read_text()) + 1 if tries.exists() else 1
    tries.write_text(str(count))
    if count <= int(ctx.prompt):
        raise RuntimeError(f"try {count} failed")
    return count

definition = WorkflowDefinition(moderator=moderator, roles={"flaky": flaky})
"""


async def test_a_raising_role_is_retried_before_its_run_fails(ws: Callable[..., Path]) -> None:
    config = (
        "workflows:\n  w:\n    concurrency: 2\n"
        "    retry: {attempts: 3, backoff: 100ms, max_backoff: 200ms}\n"
    )
    root = ws(config, {}, workflows={"w": ROLE_RETRY})
    async with running(root) as (kernel, recorder):
        recovers, _ = await kernel.trigger_workflow("w", "2")  # fails twice, then returns
        gives_up, _ = await kernel.trigger_workflow("w", "5")  # fails all three tries
        await wait_until(lambda: "completed" in recorder.statuses(recovers))
        await wait_until(lambda: "failed" in recorder.statuses(gives_up))
    with LogStore.open_readonly(root / "data/logs.db") as store:
        thread, failed = store.messages(recovers), store.run(gives_up)
    assert [(m.role, m.content) for m in thread[1:]] == [("flaky", 3)]
    assert failed is not None
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("RuntimeError: try 3 failed")
    logged = [row for row in recorder.of(LogType.WORKFLOW_LOG, "w") if row.ref_id == recovers]
    assert [row.payload["message"] for row in logged] == [
        "role 'flaky' raised (try 1 of 3): retrying",
        "role 'flaky' raised (try 2 of 3): retrying",
    ]
    assert logged[0].payload["fields"]["error"] == "RuntimeError: try 1 failed"
