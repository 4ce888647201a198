"""Which memory cgroup nerve finds and what it writes there, read from a /proc and a cgroup
tree laid out in a temporary folder as Linux lays them out: a cgroup v2 machine (this one has
its memory controller on v1, which the reliability suite drives for real), a hybrid one, and
one where nothing can be used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nerve_daemon.supervise.cgroups import LEAF, POLL, MemoryCgroups, own_memory_cgroups

V2_MOUNT = "30 23 0:26 / {point} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNT = "35 31 0:32 / {point} rw,relatime - cgroup cgroup rw,memory\n"


def fake_proc(tmp_path: Path, cgroup: str, mountinfo: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/cgroup").write_text(cgroup)
    (proc / "self/mountinfo").write_text(mountinfo)
    return proc


def v2_tree(tmp_path: Path, controllers: str = "cpu io memory pids") -> tuple[Path, Path]:
    """A cgroup2 mount with this process in /system.slice/nerve.service."""
    point = tmp_path / "unified"
    own = point / "system.slice/nerve.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text("\n")
    proc = fake_proc(tmp_path, "0::/system.slice/nerve.service\n", V2_MOUNT.format(point=point))
    return proc, own


def test_on_cgroup_v2_a_group_gets_memory_max_no_swap_and_the_controller_delegated(
    tmp_path: Path,
) -> None:
    proc, own = v2_tree(tmp_path)
    cgroups = MemoryCgroups.find(proc)
    assert (cgroups.method, cgroups.own) == ("cgroup v2", own.resolve())
    assert list(own.glob("nerve-*")) == []  # nothing made until a group needs it
    (own / "nerve-999999999-1").mkdir()  # left by a daemon that is gone: removed at the next find
    assert MemoryCgroups.find(proc).own == own.resolve()
    assert list(own.glob("nerve-*")) == []

    group = cgroups.group("system", 256 * 10**6)
    assert group is not None
    assert cgroups.base is not None
    assert group.path == cgroups.base / "group-system"
    assert (group.path / "memory.max").read_text() == "256000000"
    assert (group.path / "memory.swap.max").read_text() == "0"
    assert group.procs == group.path / "cgroup.procs"
    for parent in (own, cgroups.base):  # its children may use the memory controller
        assert (parent / "cgroup.subtree_control").read_text() == "+memory"
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\n")
    (group.path / "memory.peak").write_text("255999000\n")
    assert (group.oom_kills(), group.peak()) == (2, 255_999_000)

    assert cgroups.group("system", None) is group  # the limit lifted, the same cgroup
    assert (group.path / "memory.max").read_text() == "max"
    odd = cgroups.group("a group/with spaces", 10**8)
    assert odd is not None
    assert odd.path.parent == cgroups.base
    assert odd.path.name.startswith("group-")
    assert "/" not in odd.path.name[6:]


def test_a_v2_cgroup_holding_only_the_daemon_moves_it_into_a_leaf_before_delegating(
    tmp_path: Path,
) -> None:
    """Not the root (it has a `cgroup.type`), so it may hold no process once its children have
    a controller: the daemon's processes move into `nerve-<pid>-<n>/kernel` first, and back at
    stop. (The reliability suite drives the same on this machine's real v2 hierarchy.)"""
    proc, own = v2_tree(tmp_path)
    (own / "cgroup.type").write_text("domain\n")
    (own / "cgroup.procs").write_text(f"{os.getpid()}\n")
    cgroups = MemoryCgroups.find(proc)
    group = cgroups.group("system", 10**8)
    assert group is not None
    assert cgroups.base is not None
    assert (cgroups.base / LEAF / "cgroup.procs").read_text() == str(os.getpid())
    assert (own / "cgroup.subtree_control").read_text() == "+memory"
    cgroups.close()  # handed back, and the daemon moved back
    assert (own / "cgroup.subtree_control").read_text() == "-memory"
    assert (own / "cgroup.procs").read_text() == str(os.getpid())


def test_a_v2_cgroup_shared_with_other_processes_is_left_alone_and_the_limit_polled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proc, own = v2_tree(tmp_path)
    (own / "cgroup.type").write_text("domain\n")
    (own / "cgroup.procs").write_text(f"1\n{os.getpid()}\n")  # and pid 1, not ours
    cgroups = MemoryCgroups.find(proc)
    assert cgroups.group("system", 10**8) is None
    assert cgroups.method == POLL
    assert list(own.glob("nerve-*")) == []  # nothing made, nothing moved
    assert (own / "cgroup.subtree_control").read_text() == "\n"
    assert "also holds processes other than nerve's: 1 (" in caplog.text
    assert cgroups.why is not None
    assert "also holds processes other than nerve's: 1 (" in cgroups.why  # said in `health`


def test_a_v2_cgroup_without_the_memory_controller_is_not_used(tmp_path: Path) -> None:
    proc, _ = v2_tree(tmp_path, controllers="cpu pids")
    cgroups = MemoryCgroups.find(proc)
    assert (cgroups.method, cgroups.group("system", 10**8)) == (POLL, None)


def test_on_a_hybrid_machine_the_v1_memory_hierarchy_is_used(tmp_path: Path) -> None:
    """The unified v2 mount holds no controllers; memory is a v1 hierarchy's (as here)."""
    unified, memory = tmp_path / "unified", tmp_path / "memory"
    (unified / "user.slice").mkdir(parents=True)
    (unified / "user.slice/cgroup.controllers").write_text("\n")
    own = memory / "user.slice"
    own.mkdir(parents=True)
    proc = fake_proc(
        tmp_path,
        "5:memory:/user.slice\n1:name=systemd:/user.slice\n0::/user.slice\n",
        V2_MOUNT.format(point=unified) + V1_MOUNT.format(point=memory),
    )
    assert own_memory_cgroups(proc) == [("cgroup v1", own.resolve())]
    cgroups = MemoryCgroups.find(proc)
    group = cgroups.group("leaks", 100 * 10**6)
    assert group is not None
    assert group.method == "cgroup v1"
    assert (group.path / "memory.limit_in_bytes").read_text() == "100000000"
    assert (group.path / "memory.memsw.limit_in_bytes").read_text() == "100000000"
    assert (group.path / "memory.move_charge_at_immigrate").read_text() == "1"
    (group.path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert group.oom_kills() == 1
    cgroups.close()  # (rmdir fails on a folder with files: a real cgroup's files are not files)


def test_no_memory_cgroup_at_all_means_polling(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, "1:name=systemd:/\n", "")
    cgroups = MemoryCgroups.find(proc)
    assert (cgroups.method, cgroups.why) == (
        POLL,
        "no memory cgroup controller is mounted for nerve",
    )
    assert MemoryCgroups.find(tmp_path / "nowhere").method == POLL
