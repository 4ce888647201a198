"""LogWriter: the one writer of logs.db, committing in groups on a thread of its own.

Callers submit write operations and are answered only after the transaction holding them has
committed: acknowledged means durable (to the `synchronous` level chosen in nerve.yaml). While
one batch commits, the next accumulates, so under load many operations share one commit
(group commit) and a single write still commits at once when the writer is idle.

If a batch fails, its operations are retried one by one, so one bad operation (say, an illegal
run transition, or a number SQLite cannot hold) fails alone and the rest commit; its caller gets
a `StoreError`, whatever the driver raised. If it fails because logs.db cannot be written
at all (the disk is full, an I/O error, the file is locked or read-only), no operation is at
fault: the writer *stalls*. It keeps the batch, retries it with backoff, and says so once in the
daemon log; what is submitted meanwhile waits in memory (posted rows beyond `max_held` are
dropped and counted), and everything commits, in order, once the store can be written again.
`stall` tells whether the writer is stalled now; `on_stall_start` hears why a stall began and
`on_stall_end` how long it lasted (both from the writer's thread).

Under `synchronous: normal` SQLite fsyncs the WAL only at checkpoints, which come every ~1,000
pages: at a few writes a second, a power cut could take back minutes. With `sync_every_s`, the
writer fsyncs the WAL itself at most that long after a commit (after the next commit once it is
due, or when it falls idle), so a power cut takes back at most about that long.

The kernel awaits writes with `write_async` from its event loop; tests and tools use `write` or
`submit` from threads. This module is the one bridge between the writer thread and the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.from_thread import run_sync as run_sync_from_thread
from anyio.lowlevel import EventLoopToken, current_token
from sqlalchemy import Connection

from nerve_core.errors import StoreError

from .log_store import AppendLogs, LogRow, LogStore, WriteOp

_STOP = object()
log = logging.getLogger("nerve")

# SQLite's primary result codes for "the store cannot be written now", not "this write is wrong":
# BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN.
_STORE_UNAVAILABLE_CODES = frozenset({5, 6, 7, 8, 10, 13, 14})
_CLOSE_GIVE_UP_S = 5.0  # a stalled writer being closed retries this long, then fails what waits


@dataclass(slots=True)
class _Pending:
    op: WriteOp
    future: Future[None] | None = field(default_factory=Future)  # None: posted, nobody waits
    event: anyio.Event | None = None


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    ops: int = 0
    failed_ops: int = 0
    largest_batch: int = 0
    stalls: int = 0
    dropped_while_stalled: int = 0
    wal_syncs: int = 0


@dataclass(frozen=True, slots=True)
class Stall:
    """logs.db cannot be written: since when (wall clock, ms), why, and what waits meanwhile."""

    since_ms: int
    error: str
    held: int = 0  # writes waiting to commit (a lower bound, read without a lock)
    dropped: int = 0  # posted rows dropped because more than `max_held` were waiting
    dropped_before: int = 0  # the writer's count of dropped rows when the stall began


def store_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the store cannot be written at all (disk full, I/O error, locked,
    read-only), as opposed to this write being wrong."""
    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the DBAPI error
    if not isinstance(orig, sqlite3.OperationalError | sqlite3.DatabaseError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _STORE_UNAVAILABLE_CODES
    message = str(orig)
    return any(
        words in message
        for words in ("disk is full", "disk I/O error", "database is locked", "readonly database")
    )


class LogWriter:
    def __init__(
        self,
        store: LogStore,
        *,
        max_batch: int = 10_000,
        linger_s: float = 0.0,
        on_failure: Callable[[Exception], None] | None = None,
        max_held: int = 200_000,
        retry_max_s: float = 2.0,
        on_stall_end: Callable[[Stall, float], None] | None = None,
        on_stall_start: Callable[[Stall], None] | None = None,
        sync_every_s: float | None = None,
    ) -> None:
        if not store.writable:
            raise StoreError("the log writer needs a writable LogStore")
        self.store = store
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.on_failure = on_failure
        self.max_held = max_held
        self.retry_max_s = retry_max_s
        self.on_stall_end = on_stall_end
        self.on_stall_start = on_stall_start
        self.stats = WriterStats()
        self.sync_every_s = sync_every_s
        self._unsynced_since: float | None = None  # the first commit the WAL's last fsync missed
        self._stall: Stall | None = None
        self._give_up_at: float | None = None  # when a stalled, closing writer stops retrying
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._token: EventLoopToken | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._connection: Connection | None = None

    # -- lifetime ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="nerve-log-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Commit everything submitted so far, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()

    async def __aenter__(self) -> LogWriter:
        self._token = current_token()
        try:  # on asyncio, wake waiters without making the writer wait for the loop
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await anyio.to_thread.run_sync(self.close)

    def __enter__(self) -> LogWriter:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def submit(self, op: WriteOp) -> Future[None]:
        """Queue `op`; the future completes once it has committed (or failed)."""
        future: Future[None] = Future()
        self._enqueue(_Pending(op, future))
        return future

    def post(self, op: WriteOp) -> None:
        """Queue `op` with nobody waiting for it (the kernel's own log rows). Posted writes may
        linger up to `linger_s` to share a commit; a failure goes to `on_failure`."""
        self._enqueue(_Pending(op, None))

    def write(self, op: WriteOp) -> None:
        """Queue `op` and block until it has committed; raise what failed it."""
        self.submit(op).result()

    def append(self, *rows: LogRow) -> Future[None]:
        return self.submit(AppendLogs(rows))

    async def write_async(self, op: WriteOp) -> None:
        """From the event loop the writer was entered in: return once `op` has committed."""
        if self._token is None:
            raise StoreError("write_async needs the writer entered with `async with`")
        future: Future[None] = Future()
        event = anyio.Event()
        self._enqueue(_Pending(op, future, event))
        await event.wait()
        future.result()  # raises what failed the op

    @property
    def stall(self) -> Stall | None:
        """Why logs.db cannot be written now, or None while writes commit."""
        stall = self._stall
        if stall is None:
            return None
        dropped = self.stats.dropped_while_stalled - stall.dropped_before
        return Stall(stall.since_ms, stall.error, self._queue.qsize(), dropped)

    def _enqueue(self, pending: _Pending) -> _Pending:
        if self._closed:
            raise StoreError("the log writer is closed")
        self.start()
        # Only the writer's thread sets or clears `_stall`; callers merely count what they drop.
        if (
            self._stall is not None
            and pending.future is None
            and self._queue.qsize() >= self.max_held
        ):
            self.stats.dropped_while_stalled += 1
            return pending
        self._queue.put(pending)
        return pending

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        # One connection for the writer's life (no pool checkout per commit), replaced only
        # after the store could not be written (see `_drop_connection`).
        try:
            self._loop_batches()
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _drop_connection(self) -> None:
        """Discard the connection: after an I/O error SQLite can keep it in an error state
        that outlasts the cause, so the next attempt opens a fresh one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.invalidate()
                connection.close()

    def _loop_batches(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._until_sync())
            except queue.Empty:  # idle, and commits wait for their sync
                self._sync_wal()
                continue
            if first is _STOP:
                break
            batch: list[_Pending] = [first]
            if self.linger_s > 0 and first.future is None:
                stopping = self._linger(batch)
            while len(batch) < self.max_batch and not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
            if self.sync_every_s is not None:
                self._unsynced_since = self._unsynced_since or time.monotonic()
                if self._until_sync() == 0:
                    self._sync_wal()
        if self._unsynced_since is not None:
            self._sync_wal()

    def _until_sync(self) -> float | None:
        """Seconds until the WAL is due its fsync: None when nothing waits for one."""
        if self._unsynced_since is None or self.sync_every_s is None:
            return None
        return max(0.0, self._unsynced_since + self.sync_every_s - time.monotonic())

    def _sync_wal(self) -> None:
        self._unsynced_since = None
        wal = self.store.path.with_name(self.store.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # checkpointed and removed: nothing left to sync
        except OSError as exc:
            log.warning("logs.db's WAL could not be opened to sync it: %s", exc)
            return
        try:
            os.fsync(fd)
            self.stats.wal_syncs += 1
        except OSError as exc:  # the next commit's sync tries again
            log.warning("logs.db's WAL could not be synced: %s", exc)
        finally:
            os.close(fd)

    def _linger(self, batch: list[_Pending]) -> bool:
        """Gather posted writes for up to `linger_s`, cut short as soon as a write arrives that
        someone waits for. Return whether the writer was asked to stop meanwhile."""
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
            if item.future is not None:
                return False
        return False

    def _apply(self, ops: list[WriteOp]) -> None:
        """Apply `ops` in one transaction on the writer's connection."""
        if self._connection is None:
            self._connection = self.store.engine.connect()
        connection = self._connection
        try:
            with connection.begin():
                self.store.apply(ops, connection)
        except BaseException:
            if connection.in_transaction():
                connection.rollback()
            raise

    def _fail(self, pending: _Pending, exc: Exception) -> None:
        self.stats.failed_ops += 1
        if not isinstance(exc, StoreError):  # a driver's error says nothing to the caller's
            wrapped = StoreError(f"the write failed: {type(exc).__name__}: {exc}")
            wrapped.__cause__ = exc
            exc = wrapped
        if pending.future is not None:
            pending.future.set_exception(exc)
        else:
            with contextlib.suppress(Exception):  # a failing report must not stop the writer
                (self.on_failure or _report)(exc)

    def _apply_until_writable(self, ops: list[WriteOp]) -> None:
        """Apply `ops`; while the store cannot be written at all, stall and retry with backoff
        (a closing writer gives up after `_CLOSE_GIVE_UP_S`). Raise what a wrong write raises."""
        delay = 0.05
        while True:
            try:
                self._apply(ops)
            except Exception as exc:
                if not store_unavailable(exc):
                    raise
                if self._closed:
                    now = time.monotonic()
                    self._give_up_at = self._give_up_at or now + _CLOSE_GIVE_UP_S
                    if now >= self._give_up_at:
                        raise
                self._stalled(exc)
                self._drop_connection()
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
            else:
                self._unstalled()
                return

    def _stalled(self, exc: Exception) -> None:
        if self._stall is None:
            self.stats.stalls += 1
            error = str(getattr(exc, "orig", exc))
            self._stall = Stall(
                int(time.time() * 1000), error, dropped_before=self.stats.dropped_while_stalled
            )
            log.error(
                "logs.db cannot be written: %s; holding writes and retrying (nothing waiting is"
                " lost unless more than %d rows pile up)",
                self._stall.error,
                self.max_held,
            )
            if self.on_stall_start is not None:
                try:  # a listener's failure must not stop the writer
                    self.on_stall_start(self._stall)
                except Exception:
                    log.exception("the start of a stall could not be reported")

    def _unstalled(self) -> None:
        stall = self.stall
        if stall is None:
            return
        self._stall = None
        seconds = time.time() - stall.since_ms / 1000
        log.warning(
            "logs.db is writable again after %.1fs; held writes committed, %d rows dropped",
            seconds,
            stall.dropped,
        )
        if self.on_stall_end is not None:
            # The batch has committed: nothing the listener raises may make it look failed (the
            # batch would be applied again, one by one). A listener that posts a row while the
            # writer is closing gets a StoreError, for one.
            try:
                self.on_stall_end(stall, seconds)
            except Exception:
                log.exception("the end of a stall could not be reported")

    def _give_up(self, batch: Sequence[_Pending], exc: Exception) -> None:
        posted = [pending for pending in batch if pending.future is None]
        for pending in batch:
            if pending.future is not None:
                self._fail(pending, exc)
        self.stats.failed_ops += len(posted)
        if posted:
            log.error(
                "logs.db cannot be written: %d log rows lost at shutdown (%s)", len(posted), exc
            )

    def _commit(self, batch: Sequence[_Pending]) -> None:
        self.stats.batches += 1
        self.stats.ops += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        try:
            self._apply_until_writable([pending.op for pending in batch])
        except Exception as exc:
            if store_unavailable(exc):  # closing, and the store stayed unwritable: give up
                self._give_up(batch, exc)
            elif len(batch) == 1:
                self._fail(batch[0], exc)
            else:
                for pending in batch:  # isolate the failing operation(s)
                    try:
                        self._apply_until_writable([pending.op])
                    except Exception as single:
                        self._fail(pending, single)
                    else:
                        if pending.future is not None:
                            pending.future.set_result(None)
        else:
            for pending in batch:
                if pending.future is not None:
                    pending.future.set_result(None)
        events = [pending.event for pending in batch if pending.event is not None]
        if events:
            self._wake(events)

    def _wake(self, events: list[anyio.Event]) -> None:
        """Set `events` in the loop that waits on them. On asyncio this only schedules it, so
        the writer goes on to its next batch while a busy loop catches up."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_set_all, events)
        elif self._token is not None:
            with contextlib.suppress(anyio.RunFinishedError):  # the loop is gone: nobody waits
                run_sync_from_thread(_set_all, events, token=self._token)


def _report(exc: Exception) -> None:
    log.error("a log write failed: %s", exc)


def _set_all(events: list[anyio.Event]) -> None:
    for event in events:
        event.set()
