"""The daily archive: with `store.archive_after` set, old log rows move to
data/archive/logs/ once at start and then every day (`nerve store archive` does the same by
hand). The archiving runs on a worker thread: it reads through a read-only handle, and the
deletion of what it archived goes through the daemon's log writer, the one writer of logs.db, so
the archive never contends with the daemon for the write lock.

A day is archived once it is `archive_after` old by the wall clock, and by the monotonic clock
too, counted from the first archive of this start: a wall clock set forward under the running
daemon (by hours, say) does not move a day into the archive early. (A wall clock set back only
makes it wait.)"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from nerve_core import LogType, NerveConfig, Workspace
from nerve_store import KERNEL_SOURCE, LogRow, archive_logs
from nerve_store.archive import Commit

from ..timing.clock import AnyioClock, Clock

log = logging.getLogger("nerve")

DAY_S = 86_400.0


class ArchiveSchedule:
    def __init__(
        self,
        workspace: Workspace,
        config: Callable[[], NerveConfig],
        record: Callable[[LogRow], None],
        every: float = DAY_S,
        commit: Commit | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._workspace = workspace
        self._commit = commit  # the daemon's log writer: its one writer deletes what is archived
        self._config = config  # read each time: a reload may change archive_after
        self._record = record
        self._every = every
        self._clock = clock or AnyioClock()
        self._anchor: tuple[float, float] | None = None  # (wall, monotonic) at the first archive

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.archive_once()
            await anyio.sleep(self._every)

    async def archive_once(self) -> None:
        after = self._config().store.archive_after
        if after is None:
            return
        cutoff = round(self._now() * 1000) - round(after * 1000)
        try:
            report = await anyio.to_thread.run_sync(
                functools.partial(
                    archive_logs,
                    self._workspace.logs_db,
                    self._workspace.archive_dir,
                    cutoff,
                    commit=self._commit,
                ),
                # A stop never waits for an archive stuck behind a stalled writer.
                abandon_on_cancel=True,
            )
        except Exception as exc:  # a full disk, a locked file: try again tomorrow
            log.error("the daily archive failed: %s", exc)
            return
        if report.days:
            self._record(
                LogRow(
                    KERNEL_SOURCE, LogType.STORE_ARCHIVE, {"days": report.days, "rows": report.rows}
                )
            )

    def _now(self) -> float:
        """The wall time, but never ahead of the wall time at the first archive plus the
        monotonic time since."""
        wall, monotonic = self._clock.wall(), self._clock.now()
        if self._anchor is None:
            self._anchor = (wall, monotonic)
        return min(wall, self._anchor[0] + monotonic - self._anchor[1])
