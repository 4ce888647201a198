"""The decision ledger: why each sense computed, waited or did not (what `nerve explain` reads).

Every decision the scheduler makes and every compute's outcome is an entry with a reason code, at
the point it is made:

- kept in memory, the newest `keep` entries per sense (`recent`), and found by the signal that
  triggered them (`for_signal`);
- counted per sense by reason; the ledger belongs to the kernel, so counts survive reloads;
- written to logs.db as `sense.decision` rows when the decision loses work: a pending trigger
  merged into a newer one (`merged`), a pending trigger dropped by a reload or a stop
  (`dropped`), a compute that could not run because its group's worker is down (`skipped`).
  Timeouts, crashes and errors have rows of their own (`compute.*`). Rows are bounded: at most one
  per sense and reason every `row_every_s`, its `count` standing for the decisions since the
  previous row, so a sense coalescing on every signal does not multiply logs.db's growth.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from nerve_core import LogType
from nerve_store import LogRow, now_ms

from .group import ComputeOutcome, OutcomeKind
from .scheduler import Decision, Trigger


class Reason(StrEnum):
    """Every reason code an entry can carry; the scheduler's decisions first, then outcomes."""

    RAN = "ran"  # asked for, and it computes now
    THROTTLED = "throttled"  # it computes when the throttle window ends
    COALESCED = "coalesced"  # a compute is in flight or pending: it becomes the pending one
    MERGED = "merged"  # a newer trigger took its place as the pending one: its compute stands
    HELD_BY_GRACE = "held_by_grace"  # it computes when the grace period ends
    DROPPED = "dropped"  # pending when its sense left nerve.yaml or the kernel stopped
    SKIPPED = "skipped"  # it did not run: its group's worker is FATAL or stopping
    COMPLETED = "completed"  # the compute returned
    FAILED = "failed"  # the compute raised
    TIMED_OUT = "timed_out"  # the compute passed its timeout; its worker was replaced
    CRASHED = "crashed"  # the worker died under the compute
    RETRIED = "retried"  # it raised or timed out: tried again (`until`) as `retry:` says
    PARKED = "parked"  # it did not run: its sense kept killing its worker and is set aside


_REASON_OF = {decision: Reason(str(decision)) for decision in Decision}  # made once


_OUTCOMES = {
    OutcomeKind.OK: Reason.COMPLETED,
    OutcomeKind.ERROR: Reason.FAILED,
    OutcomeKind.TIMEOUT: Reason.TIMED_OUT,
    OutcomeKind.CRASH: Reason.CRASHED,
    OutcomeKind.UNAVAILABLE: Reason.SKIPPED,
    OutcomeKind.PARKED: Reason.PARKED,
}


@dataclass(frozen=True, slots=True)
class Entry:
    at: int  # ms since the epoch
    reason: Reason
    trigger: str  # the trigger's lineage id
    kind: str  # interval, signal, manual, startup
    signal: str | None  # the signal that triggered it, if one did
    into: str | None = None  # coalesced: the trigger whose compute stands for it
    until: int | None = None  # throttled or held: when it computes (ms since the epoch)
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        fields = {
            "at": self.at,
            "reason": str(self.reason),
            "trigger": self.trigger,
            "kind": self.kind,
            "signal": self.signal,
            "into": self.into,
            "until": self.until,
            "detail": self.detail,
        }
        return {key: value for key, value in fields.items() if value is not None}


class Ledger:
    def __init__(
        self,
        record: Callable[[LogRow], None],
        keep: int = 50,
        row_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._record = record
        self._keep = keep
        self._row_every_s = row_every_s
        self._clock = clock
        self._recent: dict[str, collections.deque[Entry]] = {}
        self._counts: dict[str, collections.Counter[Reason]] = {}
        self._last_row: dict[tuple[str, Reason], float] = {}
        self._unwritten: collections.Counter[tuple[str, Reason]] = collections.Counter()

    def counts(self, sense: str) -> dict[Reason, int]:
        return dict(self._counts.get(sense) or {})

    def recent(self, sense: str) -> list[Entry]:
        """The sense's newest entries, oldest first."""
        return list(self._recent.get(sense) or ())

    def about(self, sense: str, trigger: Trigger) -> Entry:
        """The newest entry on `trigger`, or one made now saying it was asked for."""
        for entry in reversed(self._recent.get(sense) or ()):
            if entry.trigger == trigger.id:
                return entry
        return _entry(Reason.RAN, trigger)

    def for_signal(self, signal_id: str) -> list[tuple[str, Entry]]:
        """The entries (by sense) of the triggers `signal_id` made, still in memory."""
        return [
            (sense, entry)
            for sense, entries in self._recent.items()
            for entry in entries
            if entry.signal == signal_id
        ]

    def decided(
        self,
        sense: str,
        trigger: Trigger,
        decision: Decision,
        replaced: Trigger | None,
        until_ms: int | None = None,
    ) -> None:
        """A scheduler decision on `trigger`; `replaced` is the pending trigger it took the
        place of (merged into it: that one's compute will not run on its own)."""
        reason = _REASON_OF[decision]
        if reason is Reason.COALESCED and replaced is None:
            # Behind the compute in flight it becomes the pending one: delayed, nothing lost.
            self._note(sense, _entry(reason, trigger, detail="pending behind the compute"))
            return
        until = until_ms if reason in (Reason.THROTTLED, Reason.HELD_BY_GRACE) else None
        self._note(sense, _entry(reason, trigger, until=until), lost=reason is Reason.DROPPED)
        if replaced is not None:
            merged = _entry(Reason.MERGED, replaced, into=trigger.id)
            self._note(sense, merged, lost=True)

    def computed(self, sense: str, trigger: Trigger, outcome: ComputeOutcome) -> None:
        reason = _OUTCOMES[outcome.kind]
        lost = reason in (Reason.SKIPPED, Reason.PARKED)  # it did not run
        detail = outcome.detail if lost else None
        self._note(sense, _entry(reason, trigger, detail=detail), lost=lost)

    def retried(self, sense: str, trigger: Trigger, retry: Trigger, until_ms: int) -> None:
        """`trigger`'s compute failed: `retry` asks for the next attempt at `until_ms`."""
        detail = f"attempt {retry.attempt} as trigger {retry.id}"
        self._note(
            sense, _entry(Reason.RETRIED, trigger, into=retry.id, until=until_ms, detail=detail)
        )

    def _note(self, sense: str, entry: Entry, *, lost: bool = False) -> None:
        """Keep and count `entry`; `lost`: the decision lost work, so it is a row too."""
        recent = self._recent.get(sense)
        if recent is None:
            recent = self._recent[sense] = collections.deque(maxlen=self._keep)
        recent.append(entry)
        counts = self._counts.get(sense)
        if counts is None:  # (not setdefault: a Counter made on every call costs 7 µs)
            counts = self._counts[sense] = collections.Counter()
        counts[entry.reason] += 1
        if lost:
            self._maybe_row(sense, entry)

    def _maybe_row(self, sense: str, entry: Entry) -> None:
        key = (sense, entry.reason)
        self._unwritten[key] += 1
        now = self._clock()
        last = self._last_row.get(key)
        if last is not None and now - last < self._row_every_s:
            return  # counted in the next row
        self._last_row[key] = now
        payload: dict[str, object] = {
            "decision": str(entry.reason),
            "count": self._unwritten.pop(key),
            "kind": entry.kind,
        }
        if entry.into is not None:
            payload["into"] = entry.into
        if entry.detail is not None:
            payload["detail"] = entry.detail
        self._record(
            LogRow(
                sense,
                LogType.SENSE_DECISION,
                payload,
                ts=entry.at,
                cause=entry.trigger,
                parent=entry.signal,
            )
        )


def _entry(
    reason: Reason,
    trigger: Trigger,
    *,
    into: str | None = None,
    until: int | None = None,
    detail: str | None = None,
) -> Entry:
    signal = trigger.signal.id if trigger.signal is not None else None
    return Entry(now_ms(), reason, trigger.id, str(trigger.kind), signal, into, until, detail)
