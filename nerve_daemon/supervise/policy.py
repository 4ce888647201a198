"""The supervision policy every supervised process shares (sense group workers, workflow
workers, the fork server): how long to wait for readiness and for a stop, how fast to respawn,
and when repeated exits are a crash loop that stops respawning."""

from __future__ import annotations

import collections
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    crash_limit: int = 5
    crash_window_s: float = 60.0
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 5.0
    backoff_first_s: float = 0.1
    backoff_max_s: float = 5.0
    park_after: int = 3  # a sense whose computes killed its worker this often in crash_window_s
    park_cooldown_s: float = 600.0  # is parked this long (or until its group's code changes)


class CrashHistory:
    """Unexpected exits of one process within the policy's window: whether to stop respawning
    (a crash loop), and how long to wait before the next respawn otherwise."""

    def __init__(self, policy: GroupPolicy) -> None:
        self._policy = policy
        self._exits: collections.deque[float] = collections.deque()

    def record(self, now: float, *, backoff: bool = True) -> float | None:
        """Count an exit at `now`; the backoff before respawning, or None for a crash loop.
        `backoff=False`: the exit counts toward a crash loop but the respawn is at once (a
        worker the kernel killed for going over a limit)."""
        self._exits.append(now)
        while self._exits and self._exits[0] < now - self._policy.crash_window_s:
            self._exits.popleft()
        if len(self._exits) >= self._policy.crash_limit:
            return None
        repeats = len(self._exits) - 1  # the first exit in the window respawns at once
        if repeats == 0 or not backoff:
            return 0.0
        delay: float = self._policy.backoff_first_s * 2 ** (repeats - 1)
        return min(delay, self._policy.backoff_max_s)

    def clear(self) -> None:
        """Forget past exits (the code was fixed: a FATAL process may try again)."""
        self._exits.clear()
