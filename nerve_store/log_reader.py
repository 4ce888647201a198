"""LogReader: the kernel's reads of logs.db, for its event loop.

Each read runs on a worker thread through a read-only handle (`mode=ro`, `query_only`): it never
takes the write lock, and a lock another process holds on logs.db (`nerve store archive`, a
backup, a database browser) can delay the read but never the loop. A read that fails raises a
`StoreError`, whatever the driver said.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from sqlalchemy import select

from nerve_core import WorkflowMessage
from nerve_core.errors import StoreError

from .log_store import LogStore, RunRecord
from .schema import workflow_runs
from .timing import TimerRecord, read_marks, read_timers

T = TypeVar("T")


class LogReader:
    def __init__(self, path: Path) -> None:
        self._store = LogStore.open_readonly(path)

    def close(self) -> None:
        self._store.close()

    @property
    def store(self) -> LogStore:
        """The read-only store, for reads made in a worker thread (never on the event loop)."""
        return self._store

    async def run(self, run_id: str) -> RunRecord | None:
        return await self._read(lambda: self._store.run(run_id))

    async def run_by_key(self, workflow: str, key: str) -> RunRecord | None:
        return await self._read(lambda: self._store.run_by_key(workflow, key))

    async def unfinished_runs(self) -> list[RunRecord]:
        return await self._read(self._store.unfinished_runs)

    async def messages(self, run_id: str) -> list[WorkflowMessage]:
        return await self._read(lambda: self._store.messages(run_id))

    async def marks(self) -> dict[str, int]:
        return await self._read(lambda: self._with(read_marks))

    async def timers(self, *, pending_only: bool = True) -> list[TimerRecord]:
        return await self._read(lambda: self._with(read_timers, pending_only=pending_only))

    async def launched_by(self, causes: list[str]) -> dict[str, str]:
        """The runs whose `cause` is one of `causes`: cause → run id."""
        query = select(workflow_runs.c.cause, workflow_runs.c.run_id).where(
            workflow_runs.c.cause.in_(causes)
        )
        return await self._read(lambda: dict(self._with(lambda c: list(c.execute(query)))))

    def _with(self, read: Callable[..., T], **options: Any) -> T:
        with self._store.engine.connect() as connection:
            return read(connection, **options)

    async def _read(self, read: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(read)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"logs.db could not be read: {exc}") from exc
