"""`nerve explain` as a user runs it: against a started daemon (human and --json), then with the
daemon stopped, from logs.db alone; bad names and options are one-line errors."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nerve_core import LogType
from nerve_store import LogStore

from ..cli.conftest import run_nerve
from ..daemon.conftest import SLEEPER, build_workspace
from .conftest import scratch_folder

pytestmark = pytest.mark.slow

CONFIG = """
senses:
  a: {}
  b: {throttle: 1h}
  c: {}
reflexes:
  - sense: a
    interval: 300ms
  - sense: b
    on: [a]
  - sense: c
    on: [b]
workflows:
  w: {}
"""
SENSES = {
    "a": "def compute(ctx):\n    return {'n': 1}\n",
    "b": "def compute(ctx):\n    return {'from': ctx.signal.id}\n",
    "c": "def compute(ctx):\n    return {'workflow': 'w|2|0'}\n",
}


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_folder() as folder:
        root = build_workspace(folder / "ws", CONFIG, SENSES, workflows={"w": SLEEPER})
        yield root


def wait_for(predicate: Callable[[], object], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def first_row(root: Path, source: str, type_: LogType) -> tuple[str | None, object] | None:
    db = root / "data/logs.db"
    if not db.exists():
        return None
    with LogStore.open_readonly(db) as store:
        rows = store.logs(source=source, type=type_, limit=1)
    return (rows[0].ref_id, rows[0].payload) if rows else None


def signals_of_a_after_b(root: Path) -> int:
    """a's signals since b's (only) compute signalled: each is a trigger b holds."""
    sql = (
        "SELECT count(*) FROM logs WHERE type = 'signal' AND source = 'a' AND id >"
        " (SELECT min(id) FROM logs WHERE type = 'signal' AND source = 'b')"
    )
    with LogStore.open_readonly(root / "data/logs.db") as store, store.engine.connect() as db:
        return int(db.exec_driver_sql(sql).scalar() or 0)


def test_explain_with_the_daemon_running_and_after_it_stopped(root: Path) -> None:
    assert run_nerve("start", cwd=root).code == 0
    wait_for(lambda: first_row(root, "c", LogType.WORKFLOW_LAUNCH))
    launch = first_row(root, "c", LogType.WORKFLOW_LAUNCH)
    assert launch is not None
    run_id = launch[0]
    assert isinstance(run_id, str)
    wait_for(lambda: signals_of_a_after_b(root) >= 1)  # b has a trigger in its throttle window

    why = run_nerve("explain", "sense", "b", "--why-not", cwd=root)
    assert why.code == 0, why.err
    assert "sense b · group default · RUNNING" in why.out
    assert "why not since a's signal" in why.out
    assert "throttled: trigger s-" in why.out
    doc = json.loads(run_nerve("explain", "sense", "b", "--json", cwd=root).out)
    assert (doc["daemon"], doc["settings"]["throttle"], doc["reflexes"]) == (
        "running",
        "1h",
        [{"on": ["a"]}],
    )
    assert doc["counts"]["ran"] == 1  # the one compute; the rest wait for the window

    live_run = json.loads(run_nerve("explain", "run", run_id, "--json", cwd=root).out)
    assert [step["step"] for step in live_run["chain"]] == ["root", "signal", "signal", "launch"]
    human_run = run_nerve("explain", "run", run_id, cwd=root).out
    # b computes once (its throttle is an hour): for a's first signal, from a's startup compute
    assert live_run["chain"][0]["kind"] == "startup"
    assert "    the compute at start (after the grace period)\n" in human_run
    assert "→ c computed (trigger s-" in human_run
    assert ") and launched this run" in human_run

    signal_a = live_run["chain"][1]["signal"]
    delivered = run_nerve("explain", "signal", signal_a, cwd=root)
    assert f"signal {signal_a} from a" in delivered.out
    assert "b: computed for it: signal" in delivered.out
    as_json = run_nerve("explain", "signal", signal_a, "--json", cwd=root)
    assert as_json.code == 0, as_json.err
    doc = json.loads(as_json.out)
    assert (doc["signal"], doc["source"], doc["subscribers"]) == (signal_a, "a", ["b"])
    assert doc["deliveries"][0]["decisions"][0]["reason"] == "ran"

    assert run_nerve("stop", cwd=root).code == 0
    after = json.loads(run_nerve("explain", "run", run_id, "--json", cwd=root).out)
    assert after["chain"] == live_run["chain"]  # the same walk, from logs.db alone
    offline = run_nerve("explain", "sense", "b", "--why-not", cwd=root)
    assert offline.code == 0, offline.err
    assert "(nerve is not running: from logs.db and nerve.yaml)" in offline.out
    assert "was dropped" in offline.out  # the trigger pending at the stop, from its row


def test_explain_of_what_does_not_exist_is_a_one_line_error(root: Path) -> None:
    for args, message in [
        (("sense", "ghost"), 'error: no sense "ghost" in nerve.yaml'),
        (("run", "nope"), 'error: no workflow run "nope"'),
        (("signal", "nope"), 'error: no signal "nope" in logs.db'),
        (("sense", "../etc"), 'error: invalid sense name "../etc"'),
    ]:
        result = run_nerve("explain", *args, cwd=root)
        assert result.code == 1, (args, result.err)
        assert result.err.startswith(message), result.err
        assert "Traceback" not in result.err
    bad = run_nerve("explain", "sense", "a", "--since", "yesterday-ish", cwd=root)
    assert bad.code == 2
    assert "is neither a time" in bad.err
