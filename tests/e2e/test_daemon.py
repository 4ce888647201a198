"""`nerve start|stop|restart|status|logs` and `nerve daemon …`: the background daemon."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from nerve_core import RunStatus
from nerve_store import LogStore

from ..cli.conftest import run_nerve
from ..daemon.conftest import TWO_STEPS, build_workspace
from .conftest import scratch_folder

pytestmark = pytest.mark.slow

NERVE = Path(sys.executable).parent / "nerve"


# `second`'s sleep: 30 s on its first try (a marker beside the workflow says it began), 0 after.
ONCE_SLOW = (
    "(0 if (m := __import__('pathlib').Path(__file__).with_name('began')).exists()"
    " else (m.touch(), 30)[1])"
)


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_folder() as folder:
        root = build_workspace(
            folder / "ws",
            "senses:\n  a: {}\nreflexes:\n  - sense: a\n    interval: 200ms\nworkflows:\n  slow: {}\n",
            {"a": "def compute(ctx):\n    print('computing a')\n    return 1\n"},
            # "second" lasts 30 s the first time (a stop never waits that long for it: the run
            # is left to resume), at once when the next start resumes it
            workflows={"slow": TWO_STEPS.format(seconds=ONCE_SLOW)},
        )
        yield root


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie left for a reaper that never comes does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def daemon_pid(root: Path) -> int:
    return int((root / "nerve.pid").read_text())


def wait_for_log_line(root: Path, text: str, timeout: float = 20.0) -> None:
    """Wait until the daemon's log (worker output included) holds `text`."""
    deadline = time.monotonic() + timeout
    log = root / "logs/nerve.log"
    while not (log.exists() and text in log.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never reached {log}"
        time.sleep(0.05)


def test_start_status_logs_and_stop(root: Path) -> None:
    started = run_nerve("start", cwd=root)
    assert started.code == 0, started.err
    pid = daemon_pid(root)
    assert started.out.strip() == f"nerve started in {root} (pid {pid})"
    assert os.getsid(pid) == pid  # detached: a session of its own
    status = run_nerve("daemon", "status", "--json", cwd=root)
    assert json.loads(status.out)["pid"] == pid
    wait_for_log_line(root, "computing a")
    logs = run_nerve("logs", "-n", "200", cwd=root)
    assert "[group:default] computing a" in logs.out
    assert "worker.start kernel" in logs.out
    stopped = run_nerve("stop", cwd=root)
    assert stopped.out.strip() == f"nerve stopped (pid {pid})"
    assert not running(pid)
    assert not (root / "nerve.sock").exists()
    assert not (root / "nerve.pid").exists()
    assert run_nerve("status", cwd=root).code == 3
    assert run_nerve("stop", cwd=root).out.strip() == f"nerve is not running in {root}"


def test_a_second_start_is_refused_and_restart_replaces_the_daemon(root: Path) -> None:
    assert run_nerve("daemon", "start", cwd=root).code == 0
    first = daemon_pid(root)
    again = run_nerve("start", cwd=root)
    assert again.code == 1
    assert again.err.strip() == f"error: nerve is already running in {root} (pid {first})"
    restarted = run_nerve("restart", cwd=root)
    assert restarted.code == 0, restarted.err
    second = daemon_pid(root)
    assert second != first
    assert not running(first)
    assert run_nerve("stop", cwd=root).code == 0


def test_a_daemon_killed_with_sigkill_never_blocks_the_next_start(root: Path) -> None:
    assert run_nerve("start", cwd=root).code == 0
    pid = daemon_pid(root)
    family = psutil.Process(pid).children(recursive=True)
    os.kill(pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(pid)], timeout=10)
    assert (root / "nerve.sock").exists()  # stale files left behind
    assert (root / "nerve.pid").exists()
    _, alive = psutil.wait_procs(family, timeout=20)
    assert alive == []  # its workers followed it
    assert run_nerve("status", cwd=root).code == 3
    restarted = run_nerve("start", cwd=root)
    assert restarted.code == 0, restarted.err
    assert run_nerve("status", cwd=root).code == 0
    assert run_nerve("stop", cwd=root).code == 0


def test_stop_never_signals_another_workspaces_daemon_named_by_a_stale_pid_file(
    root: Path, tmp_path: Path
) -> None:
    assert run_nerve("start", cwd=root).code == 0
    other = build_workspace(
        tmp_path / "other", "senses:\n  b: {}\n", {"b": "def compute(ctx):\n    return 1\n"}
    )
    (other / "nerve.pid").write_text(f"{daemon_pid(root)}\n")  # left by a daemon long gone
    stopped = run_nerve("stop", cwd=other)
    assert stopped.code == 0
    assert "not running" in stopped.out
    assert running(daemon_pid(root))  # the other workspace's daemon was left alone
    assert run_nerve("status", cwd=root).code == 0
    assert run_nerve("stop", cwd=root).code == 0


def test_a_bad_config_fails_the_start_with_the_located_error(root: Path) -> None:
    (root / "nerve.yaml").write_text("senses:\n  a:\n    throttle: soon\n")
    result = run_nerve("start", cwd=root)
    assert result.code == 1
    assert 'nerve.yaml:3: senses.a.throttle: invalid duration "soon"' in result.err
    assert not (root / "nerve.pid").exists()


def test_a_daemon_that_dies_at_start_prints_the_tail_of_its_log(root: Path) -> None:
    (root / "nerve.yaml").chmod(0o644)
    lock = os.open(root / "nerve.lock", os.O_RDWR | os.O_CREAT)
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)  # someone else holds the workspace
    try:
        result = run_nerve("start", cwd=root)
    finally:
        os.close(lock)
    assert result.code == 1
    assert "nerve did not start: it exited with code 1" in result.err
    assert "another nerve is already running" in result.err


def test_stop_with_a_run_in_flight_and_the_run_resumes_at_the_next_start(root: Path) -> None:
    assert run_nerve("start", cwd=root).code == 0
    launched = json.loads(run_nerve("workflow", "trigger", "slow", "--json", cwd=root).out)
    wait_for_log_line(root, f"second begins {launched['runId']}")  # "second" is mid-turn
    assert run_nerve("stop", cwd=root).code == 0
    with LogStore.open_readonly(root / "data/logs.db") as store:
        run = store.run(launched["runId"])
        assert run is not None
        assert run.status is RunStatus.STARTED  # left for the next start to resume
    assert run_nerve("start", cwd=root).code == 0
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        with LogStore.open_readonly(root / "data/logs.db") as store:
            run = store.run(launched["runId"])
            status = run.status if run else None
        if status is RunStatus.COMPLETED:
            break
        time.sleep(0.1)
    assert status is RunStatus.COMPLETED
    assert run_nerve("stop", cwd=root).code == 0
