"""LogStore: data/logs.db, the append-only log and the workflow runs.

One process writes (the kernel, through `LogWriter`); any number read, through read-only handles
that never block the writer (WAL). Writes are expressed as small operations (`AppendLogs`,
`CreateRun`, `TransitionRun`, `AppendMessage`, `SetMeta`) applied together in one transaction by
`LogStore.apply`, so a run's status change and its `workflow.status` log row commit atomically,
and many operations share one commit.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Row, delete, func, literal_column, select

from nerve_core import LogType, RunStatus, WorkflowMessage
from nerve_core.errors import StoreError

from . import _sqlite
from .schema import META_ARCHIVE_WATERMARK, get_meta, logs, migrate, set_meta, workflow_runs
from .timing import AddTimer, EndTimer, SetMarks, TimingOp, apply_timing

KERNEL_SOURCE = "kernel"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogRow:
    """A row to append; `ts` defaults to the time of the append."""

    source: str
    type: LogType
    payload: Any = None
    ref_id: str | None = None
    ts: int | None = None
    cause: str | None = None  # lineage: the trigger or request this row came from
    parent: str | None = None  # lineage: the signal that triggered the compute it came from


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A row as stored."""

    id: int
    ts: int
    source: str
    type: str
    ref_id: str | None
    payload: Any
    cause: str | None = None
    parent: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    workflow: str
    status: RunStatus
    prompt: str
    max_rounds: int
    payload: Any
    origin: str
    created_at: int
    started_at: int | None
    ended_at: int | None
    updated_at: int
    rounds: int
    error: str | None
    cause: str | None = None  # lineage: the trigger whose compute launched it, or the request


@dataclass(frozen=True, slots=True)
class ThreadPage:
    """The most recent messages of a run before a round that fit a character budget."""

    messages: list[WorkflowMessage]
    total: int  # messages of the run in all
    omitted: int  # earlier messages (before `before`) left out for the budget


# -- write operations -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppendLogs:
    rows: Sequence[LogRow]


@dataclass(frozen=True, slots=True)
class CreateRun:
    run_id: str
    workflow: str
    prompt: str
    max_rounds: int
    origin: str
    payload: Any = None
    status: RunStatus = RunStatus.QUEUED
    reason: str | None = None
    ts: int | None = None
    cause: str | None = None  # lineage: the trigger or request that launched it
    key: str | None = None  # the client's idempotency key: a second run with it is refused


@dataclass(frozen=True, slots=True)
class TransitionRun:
    run_id: str
    status: RunStatus
    reason: str | None = None
    error: str | None = None
    ts: int | None = None


@dataclass(frozen=True, slots=True)
class AppendMessage:
    run_id: str
    workflow: str
    round: int
    role: str
    content: Any
    ts: int | None = None


@dataclass(frozen=True, slots=True)
class SetMeta:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class DeleteArchived:
    """Rows an archive run has written to its day's file, safely: deleted by id, and the archive
    watermark advanced, in one transaction."""

    ids: Sequence[int]
    watermark: int


@dataclass(frozen=True, slots=True)
class Together:
    """Operations that commit together or not at all, even when their batch has to be split to
    isolate a failing operation (say, a run's start and its START message)."""

    ops: tuple[WriteOp, ...]


WriteOp = (
    AppendLogs
    | CreateRun
    | TransitionRun
    | AppendMessage
    | SetMeta
    | DeleteArchived
    | Together
    | TimingOp
)


# -- the store ------------------------------------------------------------------------------------


@dataclass
class LogStore:
    engine: Engine
    path: Path
    writable: bool

    @classmethod
    def open(cls, path: Path, *, synchronous: str = "normal") -> LogStore:
        """The store at `path` for its one writer: created if missing, schema brought forward."""
        engine = _sqlite.open_writer(path, synchronous=synchronous)
        try:
            with engine.begin() as connection:
                migrate(connection)
            raw = engine.raw_connection()  # outside a transaction, where a checkpoint can run
            try:  # the schema and what the last run left, synced even under `normal`
                raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
            finally:
                raw.close()
        except Exception as exc:
            engine.dispose()
            if _sqlite.damaged(exc):
                raise _sqlite.unusable(path, "logs.db", exc) from None
            orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
            if isinstance(orig, sqlite3.OperationalError):  # an I/O error, a lock, no space
                raise StoreError(f"logs.db ({path}) could not be opened: {orig}") from None
            raise
        return cls(engine, path, writable=True)

    @classmethod
    def open_readonly(cls, path: Path) -> LogStore:
        """A read-only handle: no statement through it can write."""
        return cls(_sqlite.open_reader(path, what="logs.db"), path, writable=False)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def apply(self, ops: Sequence[WriteOp], connection: Connection | None = None) -> None:
        """Apply `ops` in order in one transaction (the caller's, when given)."""
        if not self.writable:
            raise StoreError("this LogStore handle is read-only")
        if connection is None:
            with self.engine.begin() as own:
                self._apply(own, ops)
        else:
            self._apply(connection, ops)

    def append(self, *rows: LogRow) -> None:
        self.apply([AppendLogs(rows)])

    def _apply(self, connection: Connection, ops: Sequence[WriteOp]) -> None:
        # The hot operations go to a cursor of the driver's connection, inside the transaction
        # SQLAlchemy began: through `exec_driver_sql` each statement paid ~4 x SQLite's own time
        # for SQLAlchemy's execution context and result (a py-spy profile of durable launches).
        cursor = _sqlite.driver(connection).cursor()
        try:
            self._apply_on(connection, cursor, ops)
        finally:
            cursor.close()

    def _apply_on(
        self, connection: Connection, cursor: sqlite3.Cursor, ops: Sequence[WriteOp]
    ) -> None:
        pending: list[tuple[Any, ...]] = []  # consecutive appends share one executemany
        for op in ops:
            if isinstance(op, AppendLogs):
                pending.extend(_row_params(row) for row in op.rows)
                continue
            if pending:
                cursor.executemany(_INSERT_LOG, pending)
                pending = []
            match op:
                case CreateRun():
                    _create_run(cursor, op)
                case TransitionRun():
                    _transition_run(cursor, op)
                case AppendMessage():
                    _append_message(cursor, op)
                case SetMeta():
                    set_meta(connection, op.key, op.value)
                case DeleteArchived():
                    for start in range(0, len(op.ids), 500):
                        chunk = list(op.ids[start : start + 500])
                        connection.execute(delete(logs).where(logs.c.id.in_(chunk)))
                    set_meta(connection, META_ARCHIVE_WATERMARK, str(op.watermark))
                case Together():
                    self._apply_on(connection, cursor, op.ops)
                case SetMarks() | AddTimer() | EndTimer():
                    apply_timing(connection, op)
        if pending:
            cursor.executemany(_INSERT_LOG, pending)

    # -- reading ---------------------------------------------------------------------------------

    def logs(
        self,
        *,
        source: str | None = None,
        type: LogType | str | None = None,
        ref_id: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = False,
        parent: str | None = None,
        types: tuple[str, ...] | None = None,
    ) -> list[LogRecord]:
        """Log rows matching every filter given; `since` inclusive, `until` exclusive (ms).
        `parent`: rows of the computes a signal triggered; `types`: any of these types."""
        query = select(logs)
        if source is not None:
            query = query.where(logs.c.source == source)
        if type is not None:
            query = query.where(logs.c.type == str(type))
        if types is not None:
            query = query.where(logs.c.type.in_([str(each) for each in types]))
        if ref_id is not None:
            query = query.where(logs.c.ref_id == ref_id)
        if parent is not None:
            query = query.where(logs.c.parent == parent)
        if since is not None:
            query = query.where(logs.c.ts >= since)
        if until is not None:
            query = query.where(logs.c.ts < until)
        order = logs.c.id.desc() if newest_first else logs.c.id
        query = query.order_by(order).limit(limit).offset(offset)
        with self.engine.connect() as connection:
            return [_log_record(row) for row in connection.execute(query)]

    def runs(
        self,
        *,
        statuses: Sequence[RunStatus] | None = None,
        workflow: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first."""
        query = select(workflow_runs)
        if statuses is not None:
            query = query.where(workflow_runs.c.status.in_([str(s) for s in statuses]))
        if workflow is not None:
            query = query.where(workflow_runs.c.workflow == workflow)
        query = query.order_by(workflow_runs.c.created_at.desc(), workflow_runs.c.run_id.desc())
        with self.engine.connect() as connection:
            rows = connection.execute(query.limit(limit).offset(offset))
            return [_run_record(row) for row in rows]

    def run(self, run_id: str) -> RunRecord | None:
        query = select(workflow_runs).where(workflow_runs.c.run_id == run_id)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _run_record(row)

    def run_by_key(self, workflow: str, key: str) -> RunRecord | None:
        """The run of `workflow` launched with idempotency key `key`, if one was."""
        query = select(workflow_runs).where(
            workflow_runs.c.workflow == workflow, workflow_runs.c.idem_key == key
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _run_record(row)

    def unfinished_runs(self) -> list[RunRecord]:
        """Runs left queued, started or crashed, in the order they were committed (acknowledged):
        what start-up recovers. Not by `created_at`: a wall clock set back between two launches
        would put the second first."""
        unfinished = [str(RunStatus.QUEUED), str(RunStatus.STARTED), str(RunStatus.CRASHED)]
        query = (
            select(workflow_runs)
            .where(workflow_runs.c.status.in_(unfinished))
            .order_by(literal_column("rowid"))  # rows are only ever appended: commit order
        )
        with self.engine.connect() as connection:
            return [_run_record(row) for row in connection.execute(query)]

    def messages(self, run_id: str) -> list[WorkflowMessage]:
        """The thread of a run, START first, in order: what `resume-thread` rebuilds from."""
        query = (
            select(logs.c.ts, logs.c.payload)
            .where(logs.c.ref_id == run_id, logs.c.type == str(LogType.WORKFLOW_MESSAGE))
            .order_by(logs.c.id)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        thread = []
        for ts, payload in rows:
            body = orjson.loads(payload)
            thread.append(
                WorkflowMessage(
                    round=body["round"], role=body["role"], content=body["content"], ts=ts
                )
            )
        return thread

    def thread(
        self, run_id: str, *, before: int | None = None, budget: int | None = None
    ) -> ThreadPage:
        """The messages of rounds before `before`, keeping the most recent whose content (as
        JSON) fits in `budget` characters altogether."""
        everything = self.messages(run_id)
        window = [m for m in everything if before is None or m.round < before]
        if budget is None:
            return ThreadPage(window, len(everything), 0)
        kept: list[WorkflowMessage] = []
        used = 0
        for message in reversed(window):
            size = len(orjson.dumps(message.content).decode())
            if used + size > budget:
                break
            kept.append(message)
            used += size
        kept.reverse()
        return ThreadPage(kept, len(everything), len(window) - len(kept))

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as connection:
            return get_meta(connection, key)

    def count_logs(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(logs)).scalar_one())


# -- operations -----------------------------------------------------------------------------------


# The append hot path goes to the DBAPI cursor with positional rows: measured here, a Core
# executemany of dicts reached 0.6 of raw sqlite3's rate, this about 1.0 (bench/log_append.py).
_LOG_COLUMNS = ("ts", "source", "type", "ref_id", "payload", "cause", "parent")
_INSERT_LOG = (
    f"INSERT INTO {logs.name} ({', '.join(logs.c[name].name for name in _LOG_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _LOG_COLUMNS)})"
)


_UPDATE_ROUNDS = (
    f"UPDATE {workflow_runs.name} SET {workflow_runs.c.rounds.name} = ?, "
    f"{workflow_runs.c.updated_at.name} = ? WHERE {workflow_runs.c.run_id.name} = ? "
    f"AND {workflow_runs.c.rounds.name} < ?"
)


def _row_params(row: LogRow) -> tuple[Any, ...]:
    ts = now_ms() if row.ts is None else row.ts
    payload = None if row.payload is None else _json(row.payload)
    return (ts, row.source, str(row.type), row.ref_id, payload, row.cause, row.parent)


# A run's creation and transitions are on every launch's path (the launch waits for the first):
# the DBAPI path, as for appends and messages (Core statements cost ~200 µs each to build).
_RUN_COLUMNS = (
    "run_id", "workflow", "status", "prompt", "max_rounds", "payload", "origin", "cause",
    "idem_key", "created_at", "started_at", "ended_at", "updated_at",
)  # fmt: skip
_INSERT_RUN = (
    f"INSERT INTO {workflow_runs.name} "
    f"({', '.join(workflow_runs.c[name].name for name in _RUN_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _RUN_COLUMNS)})"
)
_RUN_STATE = f"SELECT status, workflow FROM {workflow_runs.name} WHERE run_id = ?"


def _create_run(cursor: sqlite3.Cursor, op: CreateRun) -> None:
    ts = now_ms() if op.ts is None else op.ts
    started = ts if op.status is RunStatus.STARTED else None
    ended = ts if op.status.terminal else None
    payload = None if op.payload is None else _json(op.payload)
    cursor.execute(
        _INSERT_RUN,
        (
            op.run_id, op.workflow, str(op.status), op.prompt, op.max_rounds, payload, op.origin,
            op.cause, op.key, ts, started, ended, ts,
        ),
    )  # fmt: skip
    _status_row(cursor, op.workflow, op.run_id, op.status, op.reason, ts)


def _transition_run(cursor: sqlite3.Cursor, op: TransitionRun) -> None:
    ts = now_ms() if op.ts is None else op.ts
    current = cursor.execute(_RUN_STATE, (op.run_id,)).fetchone()
    if current is None:
        raise StoreError(f"no workflow run {op.run_id}")
    status = RunStatus(current[0])
    if not status.can_become(op.status):
        raise StoreError(f"run {op.run_id} cannot go from {status} to {op.status}")
    sets, params = ["status = ?", "updated_at = ?"], [str(op.status), ts]
    if op.status is RunStatus.STARTED:
        sets.append("started_at = coalesce(started_at, ?)")  # a resumed run keeps its first
        params.append(ts)
    if op.status.terminal:
        sets.append("ended_at = ?")
        params.append(ts)
    if op.error is not None:
        sets.append("error = ?")
        params.append(op.error)
    update_run = f"UPDATE {workflow_runs.name} SET {', '.join(sets)} WHERE run_id = ?"
    cursor.execute(update_run, (*params, op.run_id))
    _status_row(cursor, current[1], op.run_id, op.status, op.reason, ts)


def _append_message(cursor: sqlite3.Cursor, op: AppendMessage) -> None:
    # A workflow round waits for this commit: the DBAPI path, as for appends (measured: the two
    # Core statements took about 300 µs a message, these about 60 µs).
    ts = now_ms() if op.ts is None else op.ts
    payload = _json({"round": op.round, "role": op.role, "content": op.content})
    cursor.execute(
        _INSERT_LOG,
        (ts, op.workflow, str(LogType.WORKFLOW_MESSAGE), op.run_id, payload, None, None),
    )
    cursor.execute(_UPDATE_ROUNDS, (op.round, ts, op.run_id, op.round))


def _status_row(
    cursor: sqlite3.Cursor,
    workflow: str,
    run_id: str,
    status: RunStatus,
    reason: str | None,
    ts: int,
) -> None:
    payload = _json({"status": str(status), "reason": reason})
    cursor.execute(
        _INSERT_LOG, (ts, workflow, str(LogType.WORKFLOW_STATUS), run_id, payload, None, None)
    )


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise StoreError(f"not JSON-serialisable: {exc}") from None


def _log_record(row: Row[Any]) -> LogRecord:
    payload = None if row.payload is None else orjson.loads(row.payload)
    return LogRecord(
        row.id, row.ts, row.source, row.type, row.ref_id, payload, row.cause, row.parent
    )


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        workflow=row.workflow,
        status=RunStatus(row.status),
        prompt=row.prompt,
        max_rounds=row.max_rounds,
        payload=None if row.payload is None else orjson.loads(row.payload),
        origin=row.origin,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        updated_at=row.updated_at,
        rounds=row.rounds,
        error=row.error,
        cause=row.cause,
    )
