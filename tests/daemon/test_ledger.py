"""The decision ledger on its own, on a clock the test moves: what it keeps, counts and writes."""

from __future__ import annotations

from nerve_core import LogType, Signal, TriggerKind
from nerve_daemon.senses.ledger import Ledger, Reason
from nerve_daemon.senses.scheduler import Decision, Trigger
from nerve_store import LogRow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_decision_rows_are_one_per_ten_seconds_and_count_what_they_stand_for() -> None:
    rows: list[LogRow] = []
    clock = Clock()
    ledger = Ledger(rows.append, keep=5, row_every_s=10.0, clock=clock)
    signal = Signal("sig-1", "src", 1, 0)
    pending = Trigger(TriggerKind.SIGNAL, signal)
    ledger.decided("s", pending, Decision.THROTTLED, None)
    for second in range(1, 8):  # each new trigger takes the pending one's place
        clock.now = float(second)
        newer = Trigger(TriggerKind.SIGNAL, signal)
        ledger.decided("s", newer, Decision.COALESCED, pending)
        pending = newer
    clock.now = 11.5  # ten seconds after the first row
    ledger.decided("s", Trigger(TriggerKind.SIGNAL, signal), Decision.COALESCED, pending)
    merged = [row for row in rows if row.payload["decision"] == "merged"]
    assert [row.payload["count"] for row in merged] == [1, 7]  # at 1 s; then the 7 since
    assert all(row.type == LogType.SENSE_DECISION for row in rows)
    assert all(row.parent == "sig-1" for row in rows)  # the signal each lost trigger was for
    assert ledger.counts("s") == {Reason.THROTTLED: 1, Reason.COALESCED: 8, Reason.MERGED: 8}
    assert len(ledger.recent("s")) == 5  # the newest kept, the rest counted
    assert ledger.recent("s")[-1].reason is Reason.MERGED


def test_a_trigger_waiting_behind_a_compute_is_delayed_not_lost() -> None:
    rows: list[LogRow] = []
    ledger = Ledger(rows.append)
    ledger.decided("s", Trigger(TriggerKind.MANUAL), Decision.COALESCED, None)
    assert rows == []  # nothing was lost: no row
    [entry] = ledger.recent("s")
    assert (entry.reason, entry.detail) == (Reason.COALESCED, "pending behind the compute")
