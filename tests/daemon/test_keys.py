"""Idempotency keys: a launch retried with its key gets the run its first try created (its status
now), never a second run; many launches with one key at once make one run; the key holds across
a restart (it is committed with the run); a sense trigger retried with its key within ten
minutes is the trigger already made."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from nerve_core import LogType, RunStatus, parse_daemon_ipc_request
from nerve_daemon.senses.keys import KEEP_S, RecentKeys
from nerve_store import LogStore

from .conftest import SLEEPER, running, wait_until

pytestmark = pytest.mark.anyio

CONFIG = "senses:\n  a: {}\nworkflows:\n  w: {}\n  v: {}\n"
SENSE = "def compute(ctx):\n    return 1\n"


def status_of(root: Path, run_id: str) -> RunStatus | None:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        run = store.run(run_id)
        return None if run is None else run.status


def runs_with(root: Path, key: str) -> list[tuple[str, str]]:
    with LogStore.open_readonly(root / "data/logs.db") as store, store.engine.connect() as db:
        found = db.exec_driver_sql(
            "SELECT workflow, run_id FROM workflow_runs WHERE idem_key = ? ORDER BY workflow",
            (key,),
        )
        return [(workflow, run_id) for workflow, run_id in found]


async def test_a_launch_retried_with_its_key_is_the_run_it_made(ws: Callable[..., Path]) -> None:
    root = ws(CONFIG, {"a": SENSE}, workflows={"w": SLEEPER, "v": SLEEPER})
    async with running(root) as (kernel, _):
        first, status, existing = await kernel.trigger_workflow_once("w", "job-1", "0")
        assert (status, existing) == (RunStatus.STARTED, False)
        await wait_until(
            lambda: (
                LogStore.open_readonly(root / "data/logs.db").run(first).status  # type: ignore[union-attr]
                is RunStatus.COMPLETED
            )
        )
        again = await kernel.trigger_workflow_once("w", "job-1", "0")
        assert again == (first, RunStatus.COMPLETED, True)  # the same run, its status now
        other, _, existing = await kernel.trigger_workflow_once("w", "job-2", "0")
        assert (other != first, existing) == (True, False)
        elsewhere, _, existing = await kernel.trigger_workflow_once("v", "job-1", "0")
        assert (elsewhere != first, existing) == (True, False)  # a key is one workflow's
    assert runs_with(root, "job-1") == [("v", elsewhere), ("w", first)]


async def test_many_launches_with_one_key_at_once_make_one_run(ws: Callable[..., Path]) -> None:
    root = ws(CONFIG, {"a": SENSE}, workflows={"w": SLEEPER, "v": SLEEPER})
    answers: list[tuple[str, RunStatus, bool]] = []
    async with running(root) as (kernel, _):

        async def launch() -> None:
            answers.append(await kernel.trigger_workflow_once("w", "once", "0"))

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(launch)
    assert len({run_id for run_id, _, _ in answers}) == 1
    assert sorted(existing for _, _, existing in answers) == [False] + [True] * 19
    assert runs_with(root, "once") == [("w", answers[0][0])]


async def test_a_key_holds_across_a_restart(ws: Callable[..., Path]) -> None:
    root = ws(CONFIG, {"a": SENSE}, workflows={"w": SLEEPER, "v": SLEEPER})
    async with running(root) as (kernel, _):
        first, _, _ = await kernel.trigger_workflow_once("w", "nightly-2026-12-03", "0")
    async with running(root) as (kernel, _):
        run_id, _, existing = await kernel.trigger_workflow_once("w", "nightly-2026-12-03", "0")
    assert (run_id, existing) == (first, True)
    assert runs_with(root, "nightly-2026-12-03") == [("w", first)]


async def test_a_sense_trigger_retried_with_its_key_computes_once(
    ws: Callable[..., Path],
) -> None:
    root = ws(CONFIG, {"a": SENSE}, workflows={"w": SLEEPER, "v": SLEEPER})
    async with running(root) as (kernel, recorder):
        assert kernel.trigger_sense("a", key="k1") is not None
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "a")) == 1)
        assert kernel.trigger_sense("a", key="k1") is None  # the same trigger: not made again
        assert kernel.trigger_sense("a", key="k2") is not None
        await wait_until(lambda: len(recorder.of(LogType.SIGNAL, "a")) == 2)
    assert len(recorder.computes_of("a")) == 2


def test_sense_keys_are_kept_ten_minutes_per_sense() -> None:
    now = [0.0]
    keys = RecentKeys(lambda: now[0])
    assert keys.first("a", "k") is True
    assert keys.first("a", "k") is False
    assert keys.first("b", "k") is True  # another sense's
    now[0] = KEEP_S - 0.001
    assert keys.first("a", "k") is False
    now[0] = KEEP_S + 0.001  # ten minutes on: forgotten
    assert keys.first("a", "k") is True


@pytest.mark.parametrize("kind", ["trigger-workflow", "trigger-sense"])
def test_a_key_is_refused_with_a_delayed_trigger_and_past_200_characters(kind: str) -> None:
    target = '"workflow":"w"' if kind == "trigger-workflow" else '"sense":"a"'
    delayed = parse_daemon_ipc_request(f'{{"type":"{kind}",{target},"at":1,"key":"k"}}')
    assert not delayed.ok
    assert "a delayed trigger (at) takes no key" in delayed.error.message
    long = parse_daemon_ipc_request(f'{{"type":"{kind}",{target},"key":"{"k" * 201}"}}')
    assert not long.ok
    assert parse_daemon_ipc_request(f'{{"type":"{kind}",{target},"key":"{"k" * 200}"}}').ok
