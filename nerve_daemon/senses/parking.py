"""Parking: a sense whose computes keep killing its group's worker is set aside for a while.

A worker that dies under a compute is blamed on that compute's sense (it is respawned at once,
and the crash does not count toward the group's crash loop). A sense that killed its worker
`park_after` times within `crash_window_s` is *parked* for `park_cooldown_s`: its computes are
not sent (each is decided `parked`, with the reason) while its group-mates go on, the way
osquery's watchdog denylists a query. It comes back when the cool-down ends (and is parked
again if it keeps killing) or when its group is reloaded (its code or config changed). Both are
rows: `sense.parked` (and the `@sense.parked` signal) and `sense.unparked`.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from nerve_core import LogType, format_duration
from nerve_store import LogRow, now_ms

from ..supervise.policy import GroupPolicy


@dataclass(frozen=True, slots=True)
class Parked:
    since_ms: int
    until: float  # time.monotonic()
    until_ms: int  # the same, on the wall clock
    kills: int
    last_exit: str

    @property
    def reason(self) -> str:
        return (
            f"parked until {time.strftime('%H:%M:%S UTC', time.gmtime(self.until_ms / 1000))}: "
            f"its computes killed its worker {self.kills} times (last: {self.last_exit})"
        )


class Parking:
    def __init__(
        self,
        group: str,
        policy: GroupPolicy,
        record: Callable[[LogRow], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._group = group
        self._policy = policy
        self._record = record
        self._clock = clock
        self._kills: dict[str, collections.deque[float]] = {}
        self.parked: dict[str, Parked] = {}

    def killed(self, sense: str, how: str) -> None:
        """`sense`'s compute was running when its worker died (`how`): park it if that makes
        `park_after` kills within the crash window."""
        now = self._clock()
        kills = self._kills.setdefault(sense, collections.deque())
        kills.append(now)
        while kills and kills[0] < now - self._policy.crash_window_s:
            kills.popleft()
        if len(kills) < self._policy.park_after or sense in self.parked:
            return
        cooldown = self._policy.park_cooldown_s
        until_ms = now_ms() + round(cooldown * 1000)
        parked = Parked(now_ms(), now + cooldown, until_ms, len(kills), how)
        self.parked[sense] = parked
        payload = {
            "group": self._group,
            "kills": len(kills),
            "windowS": self._policy.crash_window_s,
            "coolDown": format_duration(cooldown),
            "until": until_ms,
            "lastExit": how,
        }
        self._record(LogRow(sense, LogType.SENSE_PARKED, payload))

    def why_parked(self, sense: str) -> str | None:
        """Why `sense` may not compute now, or None; a cool-down that ended unparks it."""
        parked = self.parked.get(sense)
        if parked is None:
            return None
        if self._clock() < parked.until:
            return parked.reason
        self._unpark(sense, "its cool-down ended")
        return None

    def holds(self, sense: str) -> bool:
        """Whether `sense` is parked now (read-only: an ended cool-down is left for
        `why_parked` to record)."""
        parked = self.parked.get(sense)
        return parked is not None and self._clock() < parked.until

    def release_all(self, why: str) -> None:
        """The group was reloaded (its code or config changed): every sense may try again."""
        for sense in list(self.parked):
            self._unpark(sense, why)
        self._kills.clear()

    def _unpark(self, sense: str, why: str) -> None:
        del self.parked[sense]
        self._record(LogRow(sense, LogType.SENSE_UNPARKED, {"group": self._group, "why": why}))
