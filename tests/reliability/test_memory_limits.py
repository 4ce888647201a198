"""A group's memory limit, enforced by the OS where nerve can make a memory cgroup (as root here,
under the cgroup the tests run in) and by polling otherwise: a sense that allocates fast is
stopped within 5 % of the limit by its cgroup, and wherever the next look finds it by polling
once a second; `nerve status` says which enforces each; the cgroups go with the daemon, and
those a killed daemon left are removed at the next start."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from nerve_daemon.supervise.cgroups import own_memory_cgroups

from ..cli.conftest import run_nerve
from .conftest import Figure, daemon_workspace, kill_daemon, query, wait_for

pytestmark = pytest.mark.slow

LIMIT = 100_000_000  # 100MB
GREEDY = """
import os
import time
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def compute(ctx):
    # 4 MB every 10 ms (400 MB/s), every page touched, up to 1 GB; the total so far is written
    # after each chunk, so what is on disk when the worker dies is what it had been given.
    hoard, said = [], Path(__file__).parent / "allocated"
    while len(hoard) * CHUNK < 1 << 30:
        block = bytearray(CHUNK)
        block[::4096] = b"x" * len(block[::4096])
        hoard.append(block)
        fd = os.open(f"{said}.new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, str(len(hoard) * CHUNK).encode())
        os.close(fd)
        os.replace(f"{said}.new", said)  # whole, even if the worker dies right now
        time.sleep(0.01)
    time.sleep(60)
"""
CONFIG = f"""
senses:
  walled: {{group: walled}}
  polled: {{group: polled}}
groups:
  walled:
    limits: {{memory: {LIMIT}}}
  polled:
    limits: {{memory: {LIMIT}, memory_by: poll}}
"""


@pytest.fixture
def root() -> Iterator[Path]:
    with daemon_workspace(CONFIG, {"walled": GREEDY, "polled": GREEDY}) as root:
        yield root


def made_by(pid: int) -> list[Path]:
    """The cgroups the daemon `pid` made below the memory cgroup this test runs in."""
    own = [own for _, own in own_memory_cgroups(Path("/proc"))]
    return [made for each in own for made in each.glob(f"nerve-{pid}-*")]


def daemon_pid(root: Path) -> int:
    return int((root / "nerve.pid").read_text())


def limit_kills(root: Path) -> dict[str, dict[str, object]]:
    rows = query(root, "SELECT payload FROM logs WHERE type = 'worker.limit'")
    return {payload["group"]: payload for payload in (json.loads(row[0]) for row in rows)}


def test_a_memory_cgroup_stops_a_fast_allocation_within_five_percent_of_the_limit(
    root: Path, figure: Figure
) -> None:
    assert os.geteuid() == 0  # the tests run as root: a memory cgroup can be made
    assert run_nerve("start", cwd=root).code == 0
    pid = daemon_pid(root)
    [made] = made_by(pid)  # nerve-<pid>-1, with a cgroup for the group its limit is the OS's
    assert [child.name for child in made.iterdir() if child.is_dir()] == ["group-walled"]
    status = run_nerve("status", cwd=root)
    [method] = {m for m, _ in own_memory_cgroups(Path("/proc"))} & {"cgroup v1", "cgroup v2"}
    assert (
        f"memory limits enforced by: walled ({method}), polled (poll: memory_by: poll)"
        in status.out
    ), status.out
    workers = json.loads(run_nerve("status", "--json", cwd=root).out)["workers"]
    assert {w["name"]: (w.get("memoryLimit"), w.get("memoryLimitWhy")) for w in workers} == {
        "fork-server": (None, None),
        "walled": (method, None),
        "polled": ("poll", "memory_by: poll"),
    }
    for sense in ("walled", "polled"):
        assert run_nerve("sense", "trigger", sense, cwd=root).code == 0
    wait_for(lambda: len(limit_kills(root)) == 2, timeout=60)
    kills = limit_kills(root)
    assert kills["walled"]["enforcedBy"] == method
    assert kills["polled"]["enforcedBy"] == "poll"
    walled = int((root / "senses/walled/allocated").read_text())
    polled = int((root / "senses/polled/allocated").read_text())
    assert 0.5 * LIMIT < walled <= 1.05 * LIMIT, walled  # within 5 %: the OS refused the rest
    seen = int(kills["polled"]["value"])  # type: ignore[call-overload]
    assert seen > LIMIT  # resident memory (shared pages too), seen past the limit a while later
    [crash] = query(
        root, "SELECT payload FROM logs WHERE type = 'compute.crash' AND source = 'walled'"
    )
    assert (
        json.loads(crash[0])["detail"]
        == f"at its memory limit ({LIMIT}): killed by the OS ({method})"
    )
    assert run_nerve("stop", cwd=root).code == 0
    assert made_by(pid) == []  # removed with the daemon
    figure(
        "a sense allocating 400 MB/s, group limit 100 MB",
        f"{method}: stopped with {walled / 1e6:.0f} MB allocated (the OS's OOM killer, at the "
        f"limit; said as a limit kill); polled once a second: {polled / 1e6:.0f} MB allocated "
        f"when the poll saw {seen / 1e6:.0f} MB resident and killed it (up to 400 MB more "
        "between two looks)",
    )


def test_the_cgroups_a_killed_daemon_left_are_removed_at_the_next_start(root: Path) -> None:
    assert run_nerve("start", cwd=root).code == 0
    killed = daemon_pid(root)
    [left] = made_by(killed)
    kill_daemon(root)
    assert made_by(killed) == [left]  # left behind (empty: its workers died with it)
    assert run_nerve("start", cwd=root).code == 0
    assert made_by(killed) == []  # removed at the start
    started = daemon_pid(root)
    assert len(made_by(started)) == 1
    assert run_nerve("stop", cwd=root).code == 0
    assert made_by(started) == []


def test_a_limit_set_by_a_reload_holds_for_the_worker_running_and_a_group_added(
    root: Path,
) -> None:
    """`walled` runs without a limit, then a reload gives it one: its running worker moves into
    its new cgroup. `late` comes with the reload: its first worker starts in its cgroup."""
    (root / "nerve.yaml").write_text("senses:\n  walled: {group: walled}\n")
    (root / "senses/late").mkdir()
    (root / "senses/late/compute.py").write_text("def compute(ctx):\n    return 1\n")
    assert run_nerve("start", cwd=root).code == 0
    pid = daemon_pid(root)
    assert made_by(pid) == []  # no limit yet: no cgroup made
    before = worker_of(root, "walled")
    assert before is not None
    assert before["memoryLimit"] is None
    late = "  late: {group: late}\n"
    limits = "  late:\n    limits: {memory: 100MB}\n"
    (root / "nerve.yaml").write_text(
        CONFIG.replace("senses:\n", "senses:\n" + late).replace("groups:\n", "groups:\n" + limits)
    )
    assert run_nerve("reload", cwd=root).code == 0
    wait_for(lambda: worker_of(root, "late") is not None, timeout=30)
    [made] = made_by(pid)
    for group in ("walled", "late"):
        worker = worker_of(root, group)
        assert worker is not None
        assert worker["memoryLimit"] != "poll"
        joined = Path(f"/proc/{worker['pid']}/cgroup").read_text()
        assert f"/{made.name}/group-{group}" in joined, (group, joined)
    walled = worker_of(root, "walled")
    assert walled is not None
    assert walled["pid"] == before["pid"]  # the same worker, moved
    assert run_nerve("stop", cwd=root).code == 0
    assert made_by(pid) == []


def worker_of(root: Path, group: str) -> dict[str, object] | None:
    workers = json.loads(run_nerve("status", "--json", cwd=root).out)["workers"]
    found = [w for w in workers if w["name"] == group and w["pid"]]
    return found[0] if found else None
