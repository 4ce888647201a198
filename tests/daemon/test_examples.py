"""The repository's example workspace runs end to end: senses, signals, both workflows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from nerve_core import LogType, RunStatus, Workspace
from nerve_store import LogStore, now_ms, open_sense_db

from .conftest import running, wait_until

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(REPO / "nerve.yaml.example", root / "nerve.yaml")
    shutil.copytree(REPO / "senses", root / "senses")
    shutil.copytree(REPO / "workflows", root / "workflows")
    monkeypatch.setenv("NERVE_DISK_PRESSURE_PERCENT", "0")  # every partition is "nearly full"
    return root


def runs_of(root: Path, workflow: str) -> list[tuple[str, RunStatus]]:
    with LogStore.open_readonly(root / "data/logs.db") as store:
        return [(run.run_id, run.status) for run in store.runs(workflow=workflow)]


async def test_disk_pressure_launches_cleanup_which_reports_without_deleting(example: Path) -> None:
    async with running(example) as (_, recorder):
        await wait_until(lambda: recorder.of(LogType.WORKFLOW_LAUNCH, "disk-pressure"), timeout=30)
        await wait_until(
            lambda: (
                runs_of(example, "cleanup")
                and runs_of(example, "cleanup")[0][1] is RunStatus.COMPLETED
            ),
            timeout=60,
        )
        assert recorder.of(LogType.SIGNAL, "cpu-usage")
        # On a busy machine the grade may be "high": then it launches triage instead of a signal.
        assert recorder.of(LogType.SIGNAL, "system-pressure") or recorder.of(
            LogType.WORKFLOW_LAUNCH, "system-pressure"
        )
    [(run_id, _)] = runs_of(example, "cleanup")
    with LogStore.open_readonly(example / "data/logs.db") as store:
        thread = store.messages(run_id)
    assert thread[0].content.startswith("Partition ")
    assert [m.role for m in thread[1:]] == ["scanner", "executor"]
    assert thread[2].content["dry_run"] is True


async def test_triage_loops_until_its_reviewer_accepts(example: Path) -> None:
    ws = Workspace(example)
    minute_ago = now_ms() - 60_000
    for sense in ("cpu-usage", "memory-usage"):  # 30 earlier samples: one pass of 12 is not enough
        columns, values = (
            ("ts, percent, available_mb", ":ts, 50, 1")
            if sense == "memory-usage"
            else ("ts, percent", ":ts, 50")
        )
        engine = open_sense_db(ws, sense)
        with engine.begin() as db:
            for n in range(30):
                db.execute(
                    text(f"INSERT INTO samples ({columns}) VALUES ({values})"),
                    {"ts": minute_ago + n},
                )
        engine.dispose()
    async with running(example) as (kernel, recorder):
        await wait_until(
            lambda: (
                recorder.of(LogType.SIGNAL, "memory-usage")
                and recorder.of(LogType.SIGNAL, "cpu-usage")
            )
        )
        run_id, _ = await kernel.trigger_workflow("triage", "why is the machine slow?")
        await wait_until(
            lambda: (
                runs_of(example, "triage")
                and runs_of(example, "triage")[0][1] is RunStatus.COMPLETED
            ),
            timeout=60,
        )
    with LogStore.open_readonly(example / "data/logs.db") as store:
        thread = store.messages(run_id)
    roles = [m.role for m in thread[1:]]
    assert roles == ["gatherer", "proposer", "reviewer"] * 2
    assert thread[3].content == {
        "accepted": False,
        "verdict": "more facts needed",
        "diagnosis": thread[2].content["diagnosis"],
    }
    assert thread[-1].content["accepted"] is True
    assert thread[-1].content["verdict"] == "accepted"
    assert "memory-usage" in thread[1].content["facts"]
