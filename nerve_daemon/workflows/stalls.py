"""Stalled and overlong runs (`stall_after:`, `on_stall:`, `timeout:` on a workflow).

A started run that has committed no message for `stall_after` is stalled: a `workflow.stall` row
says so (and, when a reflex listens, the `@run.stalled` signal), once per stall, and `on_stall`
acts: `none` only tells; `cancel` ends the run `cancelled`; `restart` cancels the run's thread in
its worker and resumes the run from its persisted messages (`crashed`, then `started` again), as
after a worker's death; a worker that does not end the thread within the stop timeout (a role
blocking its loop) is killed, and supervision resumes its runs. A run started more than `timeout`
ago (by this daemon: a restart of the daemon starts the count again) ends `failed`.

The runner tells the watch when a run starts or resumes and when each message commits.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from nerve_core import CancelThread, LogType, OnStall, WorkflowConfig, format_duration
from nerve_store import LogRow

from ..containment import contained
from ..supervise.worker_pool import WorkerExited, WorkerProcess

log = logging.getLogger("nerve")

CHECK_MAX_S = 5.0  # the watch looks at least this often


class Runs(Protocol):
    """What the watch needs of its workflow's runner."""

    @property
    def active_runs(self) -> list[str]: ...

    def worker_of(self, run_id: str) -> WorkerProcess | None: ...

    async def end_run(self, run_id: str, reason: str, *, failed: bool = False) -> None: ...


class Act(StrEnum):
    STALLED = "stalled"  # tell (and act as on_stall says)
    TIMED_OUT = "timed_out"  # the whole run passed its timeout


@dataclass(slots=True)
class _Watched:
    started: float  # its first start (a resume keeps it: `timeout` is for the whole run)
    heard: float  # its last start, resume or committed message
    stalled: bool = False


class StallWatch:
    def __init__(
        self,
        name: str,
        config: WorkflowConfig,
        runs: Runs,
        record: Callable[[LogRow], None],
        stop_timeout_s: float,
    ) -> None:
        self.name = name
        self.config = config
        self.restarting: set[str] = set()  # cancelled in their worker, to resume at their end
        self._runs = runs
        self._record = record
        self._stop_timeout_s = stop_timeout_s
        self._watched: dict[str, _Watched] = {}

    # -- what the runner tells -------------------------------------------------------------------

    def began(self, run_id: str) -> None:
        now = time.monotonic()
        watched = self._watched.get(run_id)
        if watched is None:
            self._watched[run_id] = _Watched(now, now)
        else:
            watched.heard, watched.stalled = now, False

    def heard(self, run_id: str) -> None:
        watched = self._watched.get(run_id)
        if watched is not None:
            watched.heard, watched.stalled = time.monotonic(), False

    def forget(self, run_id: str) -> None:
        self._watched.pop(run_id, None)
        self.restarting.discard(run_id)

    def stalled(self) -> dict[str, float]:
        """The runs stalled now: run → seconds since its last message."""
        now = time.monotonic()
        return {
            run_id: round(now - watched.heard, 3)
            for run_id, watched in self._watched.items()
            if watched.stalled
        }

    # -- watching --------------------------------------------------------------------------------

    def every(self) -> float:
        """How often to look: a quarter of the shortest bound, at most CHECK_MAX_S."""
        bounds = [b for b in (self.config.stall_after, self.config.timeout) if b is not None]
        return min([CHECK_MAX_S, *(bound / 4 for bound in bounds)])

    def due(self, running: list[str]) -> list[tuple[str, Act, float]]:
        """The runs of `running` to act on now: (run, what, seconds silent or since started)."""
        now, found = time.monotonic(), []
        stall_after, timeout = self.config.stall_after, self.config.timeout
        for run_id in running:
            watched = self._watched.get(run_id)
            if watched is None or run_id in self.restarting:
                continue
            if timeout is not None and now - watched.started >= timeout:
                found.append((run_id, Act.TIMED_OUT, now - watched.started))
            elif (
                stall_after is not None
                and not watched.stalled
                and now - watched.heard >= stall_after
            ):
                watched.stalled = True
                found.append((run_id, Act.STALLED, now - watched.heard))
        return found

    async def watch(self) -> None:
        """Look at the runs in flight every so often, for as long as the runner runs."""
        async with anyio.create_task_group() as restarts:
            while True:
                await anyio.sleep(self.every())
                for run_id, act, seconds in self.due(self._runs.active_runs):
                    with contained(f"workflow {self.name}: watching run {run_id}"):
                        if act is Act.TIMED_OUT:
                            timeout = format_duration(self.config.timeout or 0)
                            reason = f"the run passed its timeout ({timeout})"
                            await self._runs.end_run(run_id, reason, failed=True)
                        else:
                            await self._stalled(run_id, seconds, restarts)

    async def _stalled(self, run_id: str, seconds: float, restarts: TaskGroup) -> None:
        on_stall = self.config.on_stall
        payload = {"silentS": round(seconds, 3), "onStall": str(on_stall)}
        self._record(LogRow(self.name, LogType.WORKFLOW_STALL, payload, ref_id=run_id))
        if on_stall is OnStall.CANCEL:
            reason = f"stalled: no message for {format_duration(round(seconds))}"
            await self._runs.end_run(run_id, reason)
        elif on_stall is OnStall.RESTART:
            restarts.start_soon(self._restart, run_id)

    async def _restart(self, run_id: str) -> None:
        with contained(f"workflow {self.name}: restarting run {run_id}"):
            worker = self._runs.worker_of(run_id)
            if worker is None or not worker.alive:
                return
            self.restarting.add(run_id)
            with contextlib.suppress(WorkerExited):
                await worker.send(CancelThread(run_id))
            with anyio.move_on_after(self._stop_timeout_s):
                while run_id in self.restarting and worker.alive:
                    await anyio.sleep(0.05)
            if run_id in self.restarting and worker.alive:
                log.warning(
                    "workflow %s: run %s: its thread did not end when cancelled; killing its "
                    "worker (its runs resume on a fresh one)",
                    self.name,
                    run_id,
                )
                worker.kill()
