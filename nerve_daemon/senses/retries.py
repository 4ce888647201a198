"""Retries of failed computes (`retry:` on a sense): a compute that raises or times out is tried
again after a backoff that doubles from `backoff` up to `max_backoff`, each wait jittered down by
up to half (so many senses failing together do not retry together), until `attempts` tries in
all. A retry is an ordinary request to the scheduler when its wait ends: it coalesces with a
compute pending or in flight, so it never overlaps the next scheduled compute. A crash (the worker
died under the compute) is not retried: computes are at most once per trigger there.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import anyio
from anyio.abc import TaskGroup

from nerve_core import NerveConfig, RetryConfig
from nerve_store import now_ms

from .group import ComputeOutcome, OutcomeKind
from .ledger import Ledger
from .scheduler import Decision, Trigger, new_trigger_id

RETRIED_OUTCOMES = (OutcomeKind.ERROR, OutcomeKind.TIMEOUT)


def backoff(retry: RetryConfig, attempt: int, draw: Callable[[], float] = random.random) -> float:
    """The wait before try `attempt + 1`, after try `attempt` failed."""
    ceiling: float = min(retry.backoff * 2 ** (attempt - 1), retry.max_backoff)
    return ceiling * (0.5 + draw() / 2)


class Retries:
    def __init__(
        self,
        config: Callable[[], NerveConfig],
        ledger: Ledger,
        request: Callable[[str, Trigger], Decision | None],
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._request = request
        self.scheduled = 0

    def after(
        self, group: TaskGroup, sense: str, trigger: Trigger, outcome: ComputeOutcome
    ) -> None:
        """Schedule the next try of `trigger`'s compute if it failed and tries are left."""
        settings = self._config().senses.get(sense)
        retry = None if settings is None else settings.retry
        if (
            retry is None
            or outcome.kind not in RETRIED_OUTCOMES
            or trigger.attempt >= retry.attempts
        ):
            return
        wait = backoff(retry, trigger.attempt)
        again = replace(
            trigger,
            attempt=trigger.attempt + 1,
            id=new_trigger_id(trigger.kind, kernel=_kernel(trigger)),
        )
        self._ledger.retried(sense, trigger, again, now_ms() + round(wait * 1000))
        self.scheduled += 1
        group.start_soon(self._later, sense, again, wait)

    async def _later(self, sense: str, trigger: Trigger, wait: float) -> None:
        await anyio.sleep(wait)
        if sense in self._config().senses:
            self._request(sense, trigger)


def _kernel(trigger: Trigger) -> bool:
    return trigger.signal is not None and trigger.signal.source.startswith("@")
