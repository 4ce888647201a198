"""Memory limits the Linux kernel enforces: a group with a `memory` limit gets a cgroup of its own,
under one the daemon makes below its own memory cgroup (`nerve-<daemon pid>-<n>`), when that is
writable: cgroup v2's `memory.max`, or v1's `memory.limit_in_bytes`. Its worker joins it as it
is forked (the fork server writes the pid in before answering), so no allocation past the limit
succeeds: the kernel's OOM killer ends the worker, and its group says so (`worker.limit`,
`enforcedBy: cgroup v1`). The resource watch's polling goes on beside it (it reads resident
memory, which counts the pages shared with the fork server too).

A v2 cgroup hands a controller to its children only while it holds no process (the root
excepted). When the daemon's holds nothing but the daemon and its descendants (a systemd service
with `Delegate=yes`, say), they move into a leaf, `nerve-<pid>-<n>/kernel`, first; when it also
holds others (the shell nerve was started from, the `nerve start` that is waiting for it), nothing
moves. At stop the daemon moves back and the controller is handed back.

Where no memory cgroup is usable (no permission, no memory controller, a v2 cgroup shared with
other processes), the polling is all there is: `health` says which, per group worker
(`memoryLimit`), and why (`memoryLimitWhy`, from `why` here). Cgroups left by a daemon that was
killed are removed at the next start.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("nerve")

POLL = "poll"
LEAF = "kernel"  # where the daemon's own processes go when its v2 cgroup must be emptied
_kernels = itertools.count(1)  # kernels of this process: each has cgroups of its own
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class _Files:
    """The file names that differ between cgroup versions."""

    limit: str
    oom_kills: str  # a flat-keyed file with an `oom_kill N` line
    peak: str
    unlimited: str


_V1 = _Files("memory.limit_in_bytes", "memory.oom_control", "memory.max_usage_in_bytes", "-1")
_V2 = _Files("memory.max", "memory.events", "memory.peak", "max")


class GroupCgroup:
    """One group's memory cgroup: its limit, and what the kernel counted in it."""

    def __init__(self, path: Path, method: str, files: _Files) -> None:
        self.path = path
        self.method = method  # "cgroup v1" or "cgroup v2"
        self._files = files
        self.limit: int | None = None

    @property
    def procs(self) -> Path:
        """The file a worker's pid is written to, to join it."""
        return self.path / "cgroup.procs"

    def set_limit(self, limit: int | None) -> None:
        value = self._files.unlimited if limit is None else str(limit)
        if self.method == "cgroup v1":  # swap must not carry a worker past the limit either:
            swap = self.path / "memory.memsw.limit_in_bytes"  # (never below the limit itself)
            with contextlib.suppress(OSError):
                swap.write_text(value)  # a raised limit: first
            (self.path / self._files.limit).write_text(value)
            with contextlib.suppress(OSError):
                swap.write_text(value)  # a lowered one: after
        else:
            (self.path / self._files.limit).write_text(value)
            with contextlib.suppress(OSError):
                (self.path / "memory.swap.max").write_text("0" if limit is not None else "max")
        self.limit = limit

    def join(self, pid: int) -> None:
        """Move the running process `pid` into this cgroup (v1 moves what it was charged with
        too; v2 counts what it allocates from now on). Raises OSError when it cannot."""
        self.procs.write_text(str(pid))

    def oom_kills(self) -> int:
        """How many processes the OOM killer ended in this cgroup so far."""
        try:
            lines = (self.path / self._files.oom_kills).read_text().splitlines()
        except OSError:
            return 0
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def peak(self) -> int | None:
        """The most memory charged to it at once (since it was made), if the kernel says."""
        try:
            return int((self.path / self._files.peak).read_text())
        except (OSError, ValueError):
            return None


class MemoryCgroups:
    """The daemon's memory cgroups, or none (`method` is then "poll")."""

    def __init__(self, own: Path | None, method: str, why: str | None = None) -> None:
        self.own = own  # the memory cgroup the daemon is in
        self.method = method
        self.why = why  # why a group's limit is polled rather than a cgroup's (None: it is not)
        self.base: Path | None = None  # nerve-<pid>-<n> below it, made when a group needs it
        self._files = _V1 if method == "cgroup v1" else _V2
        self._groups: dict[str, GroupCgroup] = {}
        self._delegation: Delegation | None = None

    @classmethod
    def find(cls, proc: Path = Path("/proc")) -> MemoryCgroups:
        """The memory cgroup this process is in, if it is writable (nothing is made in it yet);
        the cgroups of daemons no longer alive are removed from it."""
        found = own_memory_cgroups(proc)
        for method, own in found:
            if os.access(own, os.W_OK):
                _remove_stale(own)
                return cls(own, method)
        if not found:
            return cls(None, POLL, "no memory cgroup controller is mounted for nerve")
        method, own = found[0]
        return cls(None, POLL, f"its memory cgroup ({method} at {own}) is not writable by nerve")

    def group(self, name: str, limit: int | None) -> GroupCgroup | None:
        """`name`'s cgroup with `limit` (None: unlimited), made when missing; None when there
        is no cgroup to use, or this one could not be made or limited (said in the log)."""
        if self.own is None:
            return None
        cgroup = self._groups.get(name)
        try:
            if cgroup is None:
                path = self._made_base() / _dir_name(name)
                path.mkdir(exist_ok=True)
                cgroup = GroupCgroup(path, self.method, self._files)
                if self.method == "cgroup v1":  # pages a worker touched before joining follow it
                    with contextlib.suppress(OSError):
                        (path / "memory.move_charge_at_immigrate").write_text("1")
                self._groups[name] = cgroup
            if cgroup.limit != limit:
                cgroup.set_limit(limit)
        except OSError as exc:
            log.warning("group %s: no memory cgroup (%s): its limit is polled only", name, exc)
            self.why = str(exc)
            return None
        return cgroup

    def _made_base(self) -> Path:
        if self.base is not None:
            return self.base
        assert self.own is not None
        base = self.own / f"nerve-{os.getpid()}-{next(_kernels)}"
        base.mkdir()
        if self.method == "cgroup v2":
            try:
                self._delegation = Delegation.made(self.own, base, "memory")
            except OSError as exc:
                with contextlib.suppress(OSError):
                    base.rmdir()
                self.own, self.method = None, POLL  # said in the log: the others are polled too
                raise OSError(f"cgroup v2 cannot delegate its memory controller: {exc}") from exc
        self.base = base
        return base

    def close(self) -> None:
        """Remove the cgroups (their workers have exited)."""
        if self.base is None:
            return
        for cgroup in self._groups.values():
            with contextlib.suppress(OSError):
                cgroup.path.rmdir()
        self._groups.clear()
        if self._delegation is not None:
            self._delegation.undo()
        with contextlib.suppress(OSError):
            self.base.rmdir()


def own_memory_cgroups(proc: Path) -> list[tuple[str, Path]]:
    """Where this process's memory cgroup is in each mounted hierarchy that has one, v2 first."""
    try:
        memberships = (proc / "self/cgroup").read_text().splitlines()
        mounts = (proc / "self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found: list[tuple[str, Path]] = []
    for membership in memberships:
        _, controllers, path = membership.split(":", 2)
        v2 = controllers == ""
        if not v2 and "memory" not in controllers.split(","):
            continue
        for mount in mounts:
            fields = mount.split(" ")
            dash = fields.index("-")
            fstype, options = fields[dash + 1], fields[dash + 3].split(",")
            if (fstype == "cgroup2") if v2 else (fstype == "cgroup" and "memory" in options):
                root, point = fields[3], Path(fields[4])
                relative = os.path.relpath(path, root) if path.startswith(root) else None
                if relative is None or relative.startswith(".."):
                    continue  # this mount does not show our cgroup
                own = (point / relative).resolve()
                if v2 and "memory" not in _read(own / "cgroup.controllers").split():
                    continue
                found.append(("cgroup v2" if v2 else "cgroup v1", own))
                break
    return sorted(found, key=lambda item: item[0], reverse=True)


@dataclass
class Delegation:
    """A v2 controller handed from `own` to `base`'s children, and the processes that moved out
    of `own` into `base/kernel` for it (none when `own` held none, or is the root)."""

    own: Path
    base: Path
    controller: str
    moved: bool = False

    @classmethod
    def made(cls, own: Path, base: Path, controller: str) -> Delegation:
        """Enable `controller` in `own`'s and `base`'s `cgroup.subtree_control`, moving this
        process and its descendants into a leaf first when `own` holds them. Raises OSError
        saying why it cannot (another process in `own`, no permission), nothing moved then."""
        delegation = cls(own, base, controller)
        try:
            for attempt in range(3):  # a process forked between the move and the write: again
                if (own / "cgroup.type").exists():  # not the root: it must hold no process
                    delegation._empty_own()
                try:
                    delegation._enable(own)
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or attempt == 2:
                        raise
            delegation._enable(base)
        except OSError:
            delegation.undo()
            raise
        return delegation

    def _empty_own(self) -> None:
        held = _pids(self.own)
        if not held:
            return
        ours = {os.getpid()} | {child.pid for child in psutil.Process().children(recursive=True)}
        others = sorted(held - ours)
        if others:
            raise OSError(f"{self.own} also holds processes other than nerve's: {_named(others)}")
        leaf = self.base / LEAF
        leaf.mkdir(exist_ok=True)
        self.moved = True
        _move(held, leaf)

    def _enable(self, parent: Path) -> None:
        control = parent / "cgroup.subtree_control"
        if self.controller not in _read(control).split():
            control.write_text(f"+{self.controller}")

    def undo(self) -> None:
        """Hand the controller back and move the processes back into `own` (best effort: what
        is left, the next start removes)."""
        if not self.moved:
            return
        leaf = self.base / LEAF
        for parent in (self.base, self.own):  # children first: a parent's waits for theirs
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text(f"-{self.controller}")
        with contextlib.suppress(OSError):
            _move(_pids(leaf), self.own)
            leaf.rmdir()


def _pids(cgroup: Path) -> set[int]:
    return {int(line) for line in _read(cgroup / "cgroup.procs").split()}


def _move(pids: set[int], cgroup: Path) -> None:
    for pid in sorted(pids):
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            (cgroup / "cgroup.procs").write_text(str(pid))


def _named(pids: list[int]) -> str:
    names = []
    for pid in pids[:3]:
        try:
            names.append(f"{pid} ({psutil.Process(pid).name()})")
        except psutil.Error:
            names.append(str(pid))
    return ", ".join(names) + (f" and {len(pids) - 3} more" if len(pids) > 3 else "")


def _remove_stale(own: Path) -> None:
    for left in own.glob("nerve-*"):
        pid = left.name.split("-")[1]
        if not pid.isdigit() or psutil.pid_exists(int(pid)):
            continue  # not ours, or its daemon (or another kernel of this process) runs
        for child in left.iterdir():
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            left.rmdir()


def _dir_name(group: str) -> str:
    if _SAFE.fullmatch(group):
        return f"group-{group}"
    return f"group-{hashlib.sha256(group.encode()).hexdigest()[:16]}"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
