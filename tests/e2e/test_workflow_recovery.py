"""A run survives the death of the whole daemon: `kill -9` of `nerve dev` mid-role, then a new
`nerve dev`, and the run completes from its persisted messages."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import RunStatus
from nerve_store import LogStore

from ..daemon.conftest import TWO_STEPS, build_workspace
from .test_dev import read_until, start_dev

pytestmark = pytest.mark.slow

CONFIG = """
senses:
  once: {}
reflexes:
  - sense: once
    interval: 1h
workflows:
  steps: {}
"""
# Launches one run on the first start only (it remembers in its own database).
ONCE = """
from sqlalchemy import text

def compute(ctx):
    with ctx.db.begin() as db:
        db.execute(text("CREATE TABLE IF NOT EXISTS launched (n INTEGER)"))
        if db.execute(text("SELECT count(*) FROM launched")).scalar():
            return None
        db.execute(text("INSERT INTO launched VALUES (1)"))
    return {"workflow": "steps|10|survive"}
"""


def wait_for(predicate: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def run_state(root: Path) -> tuple[str, RunStatus, list[str]] | None:
    db = root / "data/logs.db"
    if not db.exists():
        return None
    with LogStore.open_readonly(db) as store:
        runs = store.runs()
        if not runs:
            return None
        run = runs[0]
        return run.run_id, run.status, [m.role for m in store.messages(run.run_id)]


def test_a_run_survives_kill_9_of_the_daemon_and_completes_after_restart(tmp_path: Path) -> None:
    root = build_workspace(
        tmp_path / "ws", CONFIG, {"once": ONCE}, workflows={"steps": TWO_STEPS.format(seconds=3)}
    )
    first = start_dev(root)
    try:
        read_until(first, "ready:")
        wait_for(lambda: (state := run_state(root)) is not None and state[2][-1:] == ["first"])
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=30)
    state = run_state(root)
    assert state is not None
    run_id, status, roles = state
    assert roles == ["__start__", "first"]  # killed while "second" was mid-turn
    assert status is RunStatus.STARTED
    second = start_dev(root)
    try:
        wait_for(lambda: (s := run_state(root)) is not None and s[1] is RunStatus.COMPLETED)
        second.send_signal(signal.SIGINT)
        second.communicate(timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate(timeout=30)
    with LogStore.open_readonly(root / "data/logs.db") as store:
        history = [r.payload for r in store.logs(ref_id=run_id, type="workflow.status")]
        thread = store.messages(run_id)
        assert len(store.runs()) == 1  # the sense did not launch again
    assert [h["status"] for h in history] == [
        "queued",
        "started",
        "crashed",
        "started",
        "completed",
    ]
    assert history[2]["reason"] == "the daemon stopped while it ran"
    assert [(m.role, m.content) for m in thread] == [
        ("__start__", "survive"),
        ("first", "one"),
        ("second", "two"),
    ]
