"""ResourceWatch: the kernel's watchdog over its group workers' memory and CPU.

Every `interval` it samples each running worker of a group with `limits` in nerve.yaml (psutil,
from /proc: cheap enough for the loop). A worker whose resident memory exceeds `memory`, or that
used more than `cpu_seconds` of CPU time over the last minute, is restarted; the kernel logs
`worker.limit` with the figure and the limit. Such a restart is deliberate and at once, but it
counts toward the crash loop: a worker over its limit on every compute is a loop too.

Where the daemon can make a memory cgroup for the group (`cgroups`), its memory limit is the
cgroup's, and the OS's to enforce: it refuses the worker any page past it, between two samples
too. It then counts the worker's own pages (and the file cache it fills), not those it shares
with the fork server, which resident memory counts too.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Protocol

import anyio
import psutil
from anyio.abc import TaskStatus

from nerve_core import LimitsConfig, LogType, WorkerState
from nerve_store import KERNEL_SOURCE, LogRow

from .cgroups import POLL, GroupCgroup, MemoryCgroups
from .worker_pool import WorkerProcess


class Limited(Protocol):
    """What the watch needs of a supervised group: its worker, its state, and a way to restart
    the worker when it goes over a limit."""

    name: str
    memory_limit: int | None
    memory_cgroup: GroupCgroup | None
    memory_polled_why: str | None

    @property
    def memory_enforced_by(self) -> str | None: ...

    @property
    def state(self) -> WorkerState: ...

    @property
    def worker(self) -> WorkerProcess | None: ...

    def restart_over_limit(self, why: str) -> None: ...


CPU_WINDOW_S = 60.0


class ResourceWatch:
    def __init__(
        self,
        groups: Mapping[str, Limited],
        limits: dict[str, LimitsConfig],
        record: Callable[[LogRow], None],
        interval: float = 1.0,
        cgroups: MemoryCgroups | None = None,
    ) -> None:
        self._record = record
        self.cgroups = cgroups or MemoryCgroups(None, POLL)
        self.use(groups, limits)
        self._interval = interval
        self._cpu: dict[int, collections.deque[tuple[float, float]]] = {}

    def use(self, groups: Mapping[str, Limited], limits: dict[str, LimitsConfig]) -> None:
        """Watch these groups with these limits from now on (their cgroups' limits follow: a
        limit removed is lifted there too)."""
        for name, group in groups.items():
            limit = limits[name].memory if name in limits else None
            by_cgroup = limit if name in limits and limits[name].memory_by == "auto" else None
            if by_cgroup is not None or group.memory_cgroup is not None:
                had, group.memory_cgroup = group.memory_cgroup, self.cgroups.group(name, by_cgroup)
                worker = group.worker
                if group.memory_cgroup is not None and had is None and worker is not None:
                    _join(group.memory_cgroup, worker)  # a limit new to a running worker
            group.memory_limit = limit
            group.memory_polled_why = (
                "memory_by: poll" if limit is not None and by_cgroup is None else self.cgroups.why
            )
        self._watched = {
            name: (groups[name], limit)
            for name, limit in limits.items()
            if name in groups and (limit.memory is not None or limit.cpu_seconds is not None)
        }

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            for group, limits in self._watched.values():
                self.check(group, limits)
            await anyio.sleep(self._interval)

    def check(self, group: Limited, limits: LimitsConfig) -> None:
        worker = group.worker
        if worker is None or not worker.alive or group.state is not WorkerState.RUNNING:
            return
        try:
            process = psutil.Process(worker.pid)
            rss = process.memory_info().rss
            cpu = process.cpu_times()
        except psutil.Error:
            return  # exiting right now: the group's supervision takes it from here
        polled = group.memory_enforced_by == POLL  # a cgroup's limit is the OS's to enforce
        if polled and limits.memory is not None and rss > limits.memory:
            self._restart(group, worker.pid, "memory", rss, limits.memory)
            return
        if limits.cpu_seconds is not None:
            now = anyio.current_time()
            history = self._cpu.setdefault(worker.pid, collections.deque())
            history.append((now, cpu.user + cpu.system))
            while history and history[0][0] < now - CPU_WINDOW_S:
                history.popleft()
            used = history[-1][1] - history[0][1]
            if used > limits.cpu_seconds:
                self._restart(group, worker.pid, "cpu_seconds", round(used, 3), limits.cpu_seconds)

    def _restart(
        self, group: Limited, pid: int, resource: str, figure: float, limit: float
    ) -> None:
        self._cpu.pop(pid, None)
        self._record(limit_row(group.name, pid, resource, figure, limit, POLL))
        group.restart_over_limit(f"over its {resource} limit ({figure} > {limit})")


def _join(cgroup: GroupCgroup, worker: WorkerProcess) -> None:
    try:
        cgroup.join(worker.pid)
    except OSError as exc:  # gone meanwhile, or not movable: its limit is polled
        worker.cgroup_error = str(exc)


def limit_row(
    group: str, pid: int, resource: str, figure: float, limit: float, enforced_by: str
) -> LogRow:
    """The `worker.limit` row: whose worker, what went over which limit, and who saw it (the
    polling here, or the OS's cgroup)."""
    payload = {"group": group, "pid": pid, "resource": resource, "value": figure, "limit": limit}
    return LogRow(KERNEL_SOURCE, LogType.WORKER_LIMIT, {**payload, "enforcedBy": enforced_by})
