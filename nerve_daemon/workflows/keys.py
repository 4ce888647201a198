"""Idempotency keys: a client that retries a launch (its connection cut, the daemon killed before
it answered) gets the run its first try created, never a second one.

A launch with a key looks for a run of the workflow created with it: in memory for the launches
in flight (a second request with the key waits for the first one's commit), then in logs.db,
where `(workflow, idem_key)` is unique. The key is committed with the run, in the same
transaction: acknowledged means the key is taken, and a run lost to a kill before its commit was
never acknowledged, so the retry creates it. Found, the answer is that run's id and status now.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from nerve_core import RunStatus
from nerve_core.errors import StoreError
from nerve_store import LogReader

from .runs import new_run_id

MAX_KEY_CHARS = 200
REMEMBERED = 10_000  # keys kept in memory after their launch (older ones: one indexed read)

# (run id, key, prompt, rounds, origin, payload, cause) → (run id, status)
Launch = Callable[[str, str, str, int, str, Any, "str | None"], Awaitable[tuple[str, RunStatus]]]


class LaunchKeys:
    def __init__(self, workflow: str, reader: LogReader, launch: Launch) -> None:
        self._workflow = workflow
        self._reader = reader
        self._launch = launch
        self._seen: collections.OrderedDict[str, tuple[str, anyio.Event]] = (
            collections.OrderedDict()
        )

    async def launch(
        self,
        key: str,
        prompt: str,
        rounds: int,
        origin: str,
        payload: Any = None,
        cause: str | None = None,
    ) -> tuple[str, RunStatus, bool]:
        """Launch a run with `key`, or find the one launched with it: (id, status, found)."""
        while True:
            found = await self._find(key)
            if found is not None:
                return found[0], found[1], True
            run_id, created = new_run_id(), anyio.Event()
            self._seen[key] = (run_id, created)  # decided before any await: one launch per key
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)
            try:
                status = await self._launch(run_id, key, prompt, rounds, origin, payload, cause)
            except StoreError:
                # A launch with the key committed between our look and our write (its entry
                # already forgotten): the unique index refused ours. Look again.
                self._seen.pop(key, None)
                if await self._reader.run_by_key(self._workflow, key) is None:
                    raise
                continue
            except BaseException:
                self._seen.pop(key, None)
                raise
            finally:
                created.set()
            return status[0], status[1], False

    async def _find(self, key: str) -> tuple[str, RunStatus] | None:
        """The run launched with `key`, once its creation has committed; None if there is none."""
        seen = self._seen.get(key)
        if seen is None:
            record = await self._reader.run_by_key(self._workflow, key)
            if record is not None:
                return record.run_id, record.status
            seen = self._seen.get(key)  # a launch with it began while we read
            if seen is None:
                return None
        run_id, created = seen
        await created.wait()
        record = await self._reader.run(run_id)
        return None if record is None else (record.run_id, record.status)
