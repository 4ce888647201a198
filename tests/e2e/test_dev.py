"""`nerve dev` as a user runs it: a real command in a subprocess, stopped with Ctrl+C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from nerve_store import LogStore

from ..daemon.conftest import build_workspace

pytestmark = pytest.mark.slow

NERVE = Path(sys.executable).parent / "nerve"

CONFIG = """
senses:
  heartbeat: {group: beat}
  echo: {group: other}
reflexes:
  - sense: heartbeat
    interval: 200ms
  - sense: echo
    on: [heartbeat]
"""
SENSES = {
    "heartbeat": "import itertools\ncount = itertools.count()\ndef compute(ctx):\n    n = next(count)\n    print(f'beat {n}')\n    return {'n': n}\n",
    "echo": "def compute(ctx):\n    return {'echoed': ctx.signal.payload['n']}\n",
}


def start_dev(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen(
        [str(NERVE), "dev", "--root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def read_until(process: subprocess.Popen[str], *needles: str, timeout: float = 30) -> list[str]:
    """Lines of the process's output up to the one where every needle has been seen."""
    assert process.stdout is not None
    lines: list[str] = []
    missing = set(needles)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        missing = {needle for needle in missing if needle not in line}
        if not missing:
            return lines
    raise AssertionError(f"{sorted(missing)!r} not seen in: {lines}")


@pytest.fixture
def dev_root(tmp_path: Path) -> Path:
    return build_workspace(tmp_path / "ws", CONFIG, SENSES)


@pytest.fixture
def dev(dev_root: Path) -> Iterator[subprocess.Popen[str]]:
    process = start_dev(dev_root)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def test_nerve_dev_shows_signals_live_and_stops_gracefully_on_ctrl_c(
    dev: subprocess.Popen[str], dev_root: Path
) -> None:
    lines = read_until(dev, "signal            echo", "ready:")
    assert any("ready: 2 of 2 workers running" in line for line in lines)
    assert any("signal            heartbeat" in line for line in lines)
    dev.send_signal(signal.SIGINT)
    out, err = dev.communicate(timeout=30)
    assert dev.returncode == 0, err
    assert out.rstrip().endswith("stopped")
    assert "Traceback" not in err
    with LogStore.open_readonly(dev_root / "data/logs.db") as store:
        types = [row.type for row in store.logs(limit=10_000)]
    assert types[0] == "kernel.start"
    assert types[-1] == "kernel.stop"
    assert "signal" in types
    log_text = (dev_root / "logs/nerve.log").read_text()
    assert "[group:beat] beat 0" in log_text


def test_a_closed_terminal_stops_nerve_dev_gracefully_too(
    dev: subprocess.Popen[str], dev_root: Path
) -> None:
    """SIGHUP (the terminal went away) is a graceful stop, not the abrupt end it is by default:
    the daemon's reload signal means nothing to a foreground run."""
    read_until(dev, "ready:")
    dev.send_signal(signal.SIGHUP)
    out, err = dev.communicate(timeout=30)
    assert dev.returncode == 0, err
    assert out.rstrip().endswith("stopped")
    with LogStore.open_readonly(dev_root / "data/logs.db") as store:
        assert [row.type for row in store.logs(limit=10_000)][-1] == "kernel.stop"


def test_a_second_nerve_in_the_same_workspace_is_refused(
    dev: subprocess.Popen[str], dev_root: Path
) -> None:
    read_until(dev, "ready:")
    second = subprocess.run(
        [str(NERVE), "dev", "--root", str(dev_root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert second.returncode == 1
    assert f"another nerve is already running in {dev_root} (pid {dev.pid})" in second.stderr
    assert dev.poll() is None  # the first one is untouched


def test_workers_do_not_outlive_a_killed_kernel(dev: subprocess.Popen[str]) -> None:
    read_until(dev, "ready:")
    family = psutil.Process(dev.pid).children(recursive=True)
    assert len(family) >= 3  # the fork server and two group workers
    dev.kill()
    dev.wait(timeout=30)
    _, alive = psutil.wait_procs(family, timeout=20)
    assert alive == [], f"orphans left running: {alive}"


def test_a_bad_config_stops_nerve_dev_with_the_located_error(tmp_path: Path) -> None:
    root = build_workspace(tmp_path / "bad", "senses:\n  a:\n    throttle: soon\n", {})
    result = subprocess.run(
        [str(NERVE), "dev", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert 'nerve.yaml:3: senses.a.throttle: invalid duration "soon"' in result.stderr
    assert "Traceback" not in result.stderr
