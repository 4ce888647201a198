"""A daemon whose cgroup v2 holds processes hands a controller to its groups' cgroups for real,
on this machine's v2 hierarchy. Linux lets a v2 cgroup enable a controller for its children
only while it holds no process (the root excepted): a daemon alone in its cgroup (a systemd
service with `Delegate=yes`) moves itself and its descendants into a leaf first, and back at
stop; one that shares it with other processes moves nothing and its limits stay polled.

The memory controller is bound to v1 here (the memory limits suite drives that for real), so
this drives the same code with a controller the v2 hierarchy has (memory where it has it)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nerve_daemon.supervise.cgroups import LEAF

from .conftest import Figure

pytestmark = pytest.mark.slow

# The daemon's part, a step per line read, each answered in one JSON line: a descendant (its
# worker, in its cgroup); the controller handed to its groups' parent; handed back, as at stop.
DAEMON = """
import json, subprocess, sys
from pathlib import Path
from nerve_daemon.supervise.cgroups import Delegation

own, controller = Path(sys.argv[1]), sys.argv[2]
sys.stdin.readline()
worker = subprocess.Popen(["sleep", "60"])
print(json.dumps({"worker": worker.pid}), flush=True)
sys.stdin.readline()
base = own / "nerve-test-1"
base.mkdir()
try:
    delegation = Delegation.made(own, base, controller)
except OSError as exc:
    print(json.dumps({"error": str(exc)}), flush=True)
else:
    print(json.dumps({"moved": delegation.moved}), flush=True)
    sys.stdin.readline()
    delegation.undo()
    print(json.dumps({"undone": True}), flush=True)
sys.stdin.readline()
worker.kill()
"""


def v2_root() -> Path:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[fields.index("-") + 1] == "cgroup2":
            return Path(fields[4])
    raise AssertionError("no cgroup2 hierarchy is mounted: this test needs one")


@pytest.fixture
def hierarchy() -> Iterator[tuple[Path, str]]:
    """The v2 root with a controller enabled for its children (restored after), as root; one
    test at a time across the suite's workers, as the root's setting is the machine's."""
    with open("/tmp/nerve-tests-cgroup-v2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield from _enabled(v2_root())


def _enabled(root: Path) -> Iterator[tuple[Path, str]]:
    available = (root / "cgroup.controllers").read_text().split()
    assert available, f"{root} has no controller to hand down (all bound to v1)"
    controller = "memory" if "memory" in available else available[0]
    control = root / "cgroup.subtree_control"
    enabled = controller in control.read_text().split()
    if not enabled:
        control.write_text(f"+{controller}")
    try:
        yield root, controller
    finally:
        if not enabled:
            with contextlib.suppress(OSError):
                control.write_text(f"-{controller}")


def procs(cgroup: Path) -> set[int]:
    return {int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()}


@contextlib.contextmanager
def cgroup_with_daemon(root: Path, controller: str) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A fresh cgroup below `root` holding a process that plays the daemon; it, every process
    put in it and the cgroups made below it are gone at the end, whatever happened."""
    own = root / f"nerve-test-{uuid.uuid4().hex[:8]}"
    own.mkdir()
    try:
        with subprocess.Popen(
            [sys.executable, "-c", DAEMON, str(own), controller],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as daemon:
            try:
                (own / "cgroup.procs").write_text(str(daemon.pid))
                yield own, daemon
            finally:
                daemon.kill()
    finally:
        removed(own)


def removed(own: Path) -> None:
    """Kill what is in `own` and below it (only this test's processes are), then remove it."""
    made = sorted(
        (path for path in own.rglob("*") if path.is_dir()), key=lambda path: -len(path.parts)
    )
    deadline = time.monotonic() + 10
    for cgroup in [*made, own]:
        while cgroup.exists() and time.monotonic() < deadline:
            for pid in procs(cgroup):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                cgroup.rmdir()
            time.sleep(0.02)
    assert not own.exists(), f"{own} could not be removed"


def step(daemon: subprocess.Popen[str]) -> dict[str, object]:
    assert daemon.stdin is not None
    assert daemon.stdout is not None
    daemon.stdin.write("\n")
    daemon.stdin.flush()
    answer: dict[str, object] = json.loads(daemon.stdout.readline())
    return answer


def test_a_daemon_alone_in_its_v2_cgroup_moves_into_a_leaf_and_its_groups_get_the_controller(
    hierarchy: tuple[Path, str], figure: Figure
) -> None:
    root, controller = hierarchy
    with cgroup_with_daemon(root, controller) as (own, daemon):
        worker = int(str(step(daemon)["worker"]))
        assert procs(own) == {daemon.pid, worker}
        with pytest.raises(OSError, match="busy"):  # what Linux refuses while they are in it
            (own / "cgroup.subtree_control").write_text(f"+{controller}")
        began = time.monotonic()
        answer = step(daemon)
        took = time.monotonic() - began
        assert answer == {"moved": True}
        base = own / "nerve-test-1"
        assert procs(own) == set()
        assert procs(base / LEAF) == {daemon.pid, worker}
        assert controller in (own / "cgroup.subtree_control").read_text().split()
        group = base / "group-system"
        group.mkdir()  # a group's cgroup gets the controller: its limit files are there
        assert controller in (group / "cgroup.controllers").read_text().split()
        group.rmdir()

        assert step(daemon) == {"undone": True}  # as at stop: back where it was
        assert procs(own) == {daemon.pid, worker}
        assert not (base / LEAF).exists()
        assert controller not in (own / "cgroup.subtree_control").read_text().split()
        base.rmdir()  # and nothing left in it
    figure(
        "a daemon alone in its cgroup v2 (the memory controller here is v1's: "
        f"driven with {controller})",
        f"it and its worker moved into nerve-<pid>-<n>/{LEAF} and the controller handed to its "
        f"groups in {took * 1000:.0f} ms; moved back and handed back as at stop",
    )


def test_a_daemon_sharing_its_v2_cgroup_moves_nothing_and_says_who_is_there(
    hierarchy: tuple[Path, str],
) -> None:
    root, controller = hierarchy
    with cgroup_with_daemon(root, controller) as (own, daemon):
        other = subprocess.Popen(["sleep", "60"])  # the shell it was started from, say
        try:
            (own / "cgroup.procs").write_text(str(other.pid))
            worker = int(str(step(daemon)["worker"]))
            answer = step(daemon)
            assert f"also holds processes other than nerve's: {other.pid} (sleep)" in str(
                answer.get("error")
            ), answer
            assert procs(own) == {daemon.pid, other.pid, worker}
            assert not (own / "nerve-test-1" / LEAF).exists()
            assert controller not in (own / "cgroup.subtree_control").read_text().split()
        finally:
            other.kill()
            other.wait(10)
