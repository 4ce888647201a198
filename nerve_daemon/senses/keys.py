"""Idempotency keys of sense triggers: a retried `trigger-sense` with the same key within
`KEEP_S` is the trigger already made, not a second compute. A sense trigger is not durable (one
queued when the daemon dies is gone), so neither are its keys: they live in memory."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

KEEP_S = 600.0  # ten minutes
MOST = 10_000  # keys kept at once: the oldest go first


class RecentKeys:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()

    def first(self, sense: str, key: str) -> bool:
        """Whether this is the first trigger of `sense` with `key` within `KEEP_S` (and note it)."""
        now = self._clock()
        while self._seen and (
            len(self._seen) >= MOST or next(iter(self._seen.values())) <= now - KEEP_S
        ):
            self._seen.popitem(last=False)
        if (sense, key) in self._seen:
            return False
        self._seen[(sense, key)] = now
        return True
