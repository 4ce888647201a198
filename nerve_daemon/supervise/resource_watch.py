"""ResourceWatch: the kernel's watchdog over its group workers' memory and CPU.

Every `interval` it samples each running worker of a group with `limits` in nerve.yaml (psutil,
from /proc: cheap enough for the loop). A worker whose resident memory exceeds `memory`, or that
used more than `cpu_seconds` of CPU time over the last minute, is restarted; the kernel logs
`worker.limit` with the figure and the limit. Such a restart is deliberate and at once, but it
counts toward the crash loop: a worker over its limit on every compute is a loop too.
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

from .worker_pool import WorkerProcess


class Limited(Protocol):
    """What the watch needs of a supervised group: its worker, its state, and a way to restart
    the worker when it goes over a limit."""

    name: str

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
    ) -> None:
        self._record = record
        self.use(groups, limits)
        self._interval = interval
        self._cpu: dict[int, collections.deque[tuple[float, float]]] = {}

    def use(self, groups: Mapping[str, Limited], limits: dict[str, LimitsConfig]) -> None:
        """Watch these groups with these limits from now on."""
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
        if limits.memory is not None and rss > limits.memory:
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
        self._record(
            LogRow(
                KERNEL_SOURCE,
                LogType.WORKER_LIMIT,
                {
                    "group": group.name,
                    "pid": pid,
                    "resource": resource,
                    "value": figure,
                    "limit": limit,
                },
            )
        )
        group.restart_over_limit(f"over its {resource} limit ({figure} > {limit})")
