"""Durable timing in logs.db: marks (when each timer last fired, when each throttled sense last
started) and delayed triggers. The log writer applies the operations; reads take any connection.

A delayed trigger is `pending` from the commit that acknowledges it until it `fired` (its outcome
the run it launched or the decision its sense's scheduler made), was `cancelled`, or `failed`
(its target left nerve.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .schema import marks, timers


@dataclass(frozen=True, slots=True)
class SetMarks:
    """Marks to record (upserted): key → ms since the epoch."""

    items: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class AddTimer:
    timer_id: str
    kind: str  # "sense" or "workflow"
    target: str
    due_ms: int
    created_ms: int
    request: Any = None


@dataclass(frozen=True, slots=True)
class EndTimer:
    timer_id: str
    status: str  # fired, cancelled, failed
    ended_ms: int
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class TimerRecord:
    timer_id: str
    kind: str
    target: str
    due_ms: int
    created_ms: int
    request: Any
    status: str
    ended_ms: int | None
    outcome: str | None


TimingOp = SetMarks | AddTimer | EndTimer


def apply_timing(connection: Connection, op: TimingOp) -> None:
    match op:
        case SetMarks(items=items):
            if items:
                statement = sqlite_insert(marks)
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[marks.c.key], set_={"at_ms": statement.excluded.at_ms}
                    ),
                    [{"key": key, "at_ms": at} for key, at in items.items()],
                )
        case AddTimer():
            request = None if op.request is None else orjson.dumps(op.request).decode()
            connection.execute(
                timers.insert().values(
                    timer_id=op.timer_id,
                    kind=op.kind,
                    target=op.target,
                    due_ms=op.due_ms,
                    created_ms=op.created_ms,
                    request=request,
                    status="pending",
                )
            )
        case EndTimer():
            connection.execute(
                update(timers)
                .where(timers.c.timer_id == op.timer_id, timers.c.status == "pending")
                .values(status=op.status, ended_ms=op.ended_ms, outcome=op.outcome)
            )


def read_marks(connection: Connection) -> dict[str, int]:
    return {row.key: row.at_ms for row in connection.execute(select(marks.c.key, marks.c.at_ms))}


def read_timers(
    connection: Connection, *, pending_only: bool = True, limit: int | None = None
) -> list[TimerRecord]:
    """Delayed triggers, soonest due first (pending ones only, unless asked)."""
    query = select(timers).order_by(timers.c.due_ms, timers.c.timer_id)
    if pending_only:
        query = query.where(timers.c.status == "pending")
    if limit is not None:
        query = query.limit(limit)
    return [_record(row) for row in connection.execute(query)]


def read_timer(connection: Connection, timer_id: str) -> TimerRecord | None:
    row = connection.execute(select(timers).where(timers.c.timer_id == timer_id)).first()
    return None if row is None else _record(row)


def _record(row: Any) -> TimerRecord:
    return TimerRecord(
        row.timer_id,
        row.kind,
        row.target,
        row.due_ms,
        row.created_ms,
        None if row.request is None else orjson.loads(row.request),
        row.status,
        row.ended_ms,
        row.outcome,
    )
