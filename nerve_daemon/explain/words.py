"""What explain's answers share: the rows a compute's outcome writes, and the sentences and
shapes entries and rows are told in."""

from __future__ import annotations

import datetime
from typing import Any

from nerve_core import LogType
from nerve_store import LogRecord

from ..senses.ledger import Entry, Reason

RECENT = 10  # entries and rows shown

# The rows a compute's outcome writes (a compute that returns None writes none).
OUTCOME_TYPES = (
    LogType.SIGNAL,
    LogType.COMPUTE_ERROR,
    LogType.COMPUTE_TIMEOUT,
    LogType.COMPUTE_CRASH,
    LogType.WORKFLOW_LAUNCH,
    LogType.DIRECTIVE_INVALID,
)
RAN = frozenset({Reason.COMPLETED, Reason.FAILED, Reason.TIMED_OUT, Reason.CRASHED})


def entry_sentence(entry: Entry) -> str:
    what = f"trigger {entry.trigger} ({entry.kind}"
    what += f", signal {entry.signal})" if entry.signal else ")"
    match entry.reason:
        case Reason.MERGED:
            return f"{what} was merged into trigger {entry.into}, whose compute stands for it"
        case Reason.THROTTLED:
            return f"{what} was throttled until {at(entry.until)}"
        case Reason.HELD_BY_GRACE:
            return f"{what} was held by the grace period until {at(entry.until)}"
        case Reason.COALESCED if entry.detail:
            return f"{what} became the pending compute, behind the one in flight"
        case Reason.COALESCED:
            return f"{what} took the place of the pending trigger (the newest's details win)"
        case Reason.DROPPED:
            return f"{what} was dropped: pending when its sense was removed or nerve stopped"
        case Reason.SKIPPED:
            return f"{what} was skipped: {entry.detail or 'its group could not run it'}"
        case Reason.PARKED:
            return f"{what} did not run: its sense is {entry.detail or 'parked'}"
        case Reason.RETRIED:
            return f"{what} failed and is tried again at {at(entry.until)} ({entry.detail})"
    return f"{what}: {entry.reason}"


def decision_row_sentence(row: LogRecord) -> str:
    payload = row.payload if isinstance(row.payload, dict) else {}
    decision = payload.get("decision", "?")
    count = payload.get("count", 1)
    text = f"at {at(row.ts)}, trigger {row.cause} was {decision}"
    if payload.get("into"):
        text += f" into trigger {payload['into']}"
    if payload.get("detail"):
        text += f": {payload['detail']}"
    if isinstance(count, int) and count > 1:
        text += f" ({count} such decisions since the previous row)"
    return text


def row_dict(row: LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {"id": row.id, "at": row.ts, "type": row.type, "cause": row.cause}
    if row.ref_id is not None:
        found["ref"] = row.ref_id
    if row.parent is not None:
        found["forSignal"] = row.parent
    found["payload"] = row.payload
    return found


def at(ms: int | None) -> str:
    """A time of day in UTC, to the millisecond (the CLI shows these in the answer's sentences)."""
    if ms is None:
        return "?"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%H:%M:%S.%f")[:-3] + " UTC"
