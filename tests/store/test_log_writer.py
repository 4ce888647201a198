from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Connection

from nerve_core import START, LogType, RunStatus
from nerve_core.errors import StoreError
from nerve_store import (
    AppendLogs,
    AppendMessage,
    CreateRun,
    LogRow,
    LogStore,
    LogWriter,
    Together,
    TransitionRun,
    WriteOp,
)


def row(n: int) -> LogRow:
    return LogRow("cpu", LogType.SIGNAL, {"n": n})


def committed_count(path: Path) -> int:
    """Rows visible to a fresh connection: what survives if this process died now."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as raw, raw:
        return int(raw.execute("SELECT count(*) FROM logs").fetchone()[0])


def test_a_write_is_acknowledged_only_once_it_is_visible_to_other_connections(
    store: LogStore,
) -> None:
    with LogWriter(store) as writer:
        for n in range(50):
            writer.write(AppendLogs([row(n)]))
            assert committed_count(store.path) == n + 1


def test_under_normal_the_wal_is_fsynced_within_sync_every_s_of_a_commit_busy_or_idle(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite syncs the WAL only at its checkpoints under `synchronous: normal`; the writer
    syncs it itself, once per period while commits go on and once more when they stop."""
    wal = f"{store.path}-wal"
    synced: list[float] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == wal:
            synced.append(time.monotonic())
        real_fsync(fd)

    def slow_apply(ops: list[WriteOp], connection: Connection | None = None) -> None:
        time.sleep(0.005)  # a commit takes 5 ms: posted every ms, rows are always waiting
        real_apply(ops, connection)

    monkeypatch.setattr(os, "fsync", fsync)
    real_apply = store.apply
    monkeypatch.setattr(store, "apply", slow_apply)
    with LogWriter(store, sync_every_s=0.3) as writer:
        began = time.monotonic()
        while time.monotonic() - began < 1.0:  # busy: the writer never finds its queue empty
            writer.post(AppendLogs([row(0)]))
            time.sleep(0.001)
        busy = len(synced)
        stopped = time.monotonic()
        deadline = stopped + 10
        while len(synced) == busy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert synced[-1] > stopped  # idle: the last commits were synced without another
        time.sleep(0.5)  # (a sync due just as the rows stopped may have come first)
        settled = len(synced)
        assert settled <= busy + 2
        time.sleep(0.7)
        assert len(synced) == settled  # and nothing more while nothing is written
    assert 1 <= busy <= 5, synced  # ~1 s / 0.3 s (3 measured), not one per commit
    assert writer.stats.wal_syncs == len(synced)


def test_posted_rows_linger_to_share_a_commit_but_a_waited_write_cuts_it_short(
    store: LogStore,
) -> None:
    """A posted row waits up to `linger_s` for company; a write somebody waits for arrives and
    the batch commits at once, the posted row with it."""
    with LogWriter(store, linger_s=30.0) as writer:
        writer.post(AppendLogs([row(0)]))
        began = time.monotonic()
        writer.write(AppendLogs([row(1)]))
        waited = time.monotonic() - began
        assert committed_count(store.path) == 2  # one commit for both
    assert waited < 10.0  # not the 30 s linger (~1 ms measured)
    assert writer.stats.batches == 1


def test_a_backlog_commits_in_batches_of_at_most_max_batch(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 rows queued behind a held commit go in batches of at most `max_batch` (10), so one
    transaction never grows with the backlog."""
    applying, release = threading.Event(), threading.Event()
    apply = store.apply
    sizes: list[int] = []

    def held(ops: list[object], connection: object) -> None:
        sizes.append(len(ops))
        apply(ops, connection)  # type: ignore[arg-type]
        applying.set()
        release.wait(30)

    monkeypatch.setattr(store, "apply", held)
    with LogWriter(store, max_batch=10) as writer:
        writer.post(AppendLogs([row(-1)]))
        assert applying.wait(30)  # the writer is inside the first commit
        for n in range(100):
            writer.post(AppendLogs([row(n)]))
        release.set()
    assert committed_count(store.path) == 101
    assert sizes[0] == 1
    assert max(sizes) <= 10
    assert sum(sizes) == 101


def test_a_waiter_is_not_released_while_its_commit_is_held(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit held on an event, inside the transaction: neither a thread's future nor the
    loop's waiter may be released, and no other connection sees the row, until it commits."""
    applying, release = threading.Event(), threading.Event()
    apply = store.apply

    def held(ops: object, connection: object) -> None:
        apply(ops, connection)  # type: ignore[arg-type]
        applying.set()
        release.wait(30)  # still inside the transaction: COMMIT comes after this returns

    monkeypatch.setattr(store, "apply", held)

    async def main() -> None:
        async with LogWriter(store) as writer:
            done = anyio.Event()

            async def write() -> None:
                await writer.write_async(AppendLogs([row(1)]))
                done.set()

            async with anyio.create_task_group() as group:
                group.start_soon(write)
                await anyio.to_thread.run_sync(applying.wait, 30)
                await anyio.sleep(0.2)  # time enough for a premature release to show
                assert not done.is_set()
                assert committed_count(store.path) == 0
                release.set()
                with anyio.fail_after(30):
                    await done.wait()
            assert committed_count(store.path) == 1

    anyio.run(main)
    applying.clear()
    release.clear()
    with LogWriter(store) as writer:
        future = writer.submit(AppendLogs([row(2)]))
        assert applying.wait(30)
        time.sleep(0.2)
        assert not future.done()
        assert committed_count(store.path) == 1
        release.set()
        future.result(timeout=30)
    assert committed_count(store.path) == 2


def test_concurrent_writes_share_commits(store: LogStore) -> None:
    with LogWriter(store) as writer:
        futures = []
        threads = [
            threading.Thread(
                target=lambda: futures.extend(writer.append(row(n)) for n in range(2000))
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for future in futures:
            future.result(timeout=30)
        assert writer.stats.ops == 8000
        assert writer.stats.batches < writer.stats.ops / 5  # group commit happened
    assert committed_count(store.path) == 8000


def test_a_failing_operation_fails_alone_and_the_rest_of_its_batch_commits(store: LogStore) -> None:
    writer = LogWriter(store)
    good = [writer.append(row(n)) for n in range(100)]
    bad = writer.submit(TransitionRun("no-such-run", RunStatus.STARTED))
    more = [writer.append(row(n)) for n in range(100, 200)]
    writer.close()
    for future in good + more:
        future.result(timeout=10)
    with pytest.raises(StoreError, match="no workflow run"):
        bad.result(timeout=10)
    assert committed_count(store.path) == 200
    assert writer.stats.failed_ops == 1


def test_a_number_sqlite_cannot_hold_fails_its_write_as_a_store_error_and_the_rest_commit(
    store: LogStore,
) -> None:
    writer = LogWriter(store)
    good = writer.append(row(1))
    huge = writer.submit(CreateRun("r-huge", "echo", "", 2**63, "cli"))  # one past int64
    later = writer.append(row(2))
    writer.close()
    good.result(timeout=10)
    later.result(timeout=10)
    with pytest.raises(StoreError, match="OverflowError") as caught:
        huge.result(timeout=10)
    assert isinstance(caught.value.__cause__, OverflowError)
    assert committed_count(store.path) == 2


def test_close_commits_everything_submitted_before_it(store: LogStore) -> None:
    writer = LogWriter(store)
    futures = [writer.append(row(n)) for n in range(5000)]
    writer.close()
    assert all(future.done() for future in futures)
    assert committed_count(store.path) == 5000
    with pytest.raises(StoreError, match="closed"):
        writer.append(row(0))


def test_a_read_only_store_cannot_be_given_a_writer(store: LogStore) -> None:
    reader = LogStore.open_readonly(store.path)
    try:
        with pytest.raises(StoreError, match="writable"):
            LogWriter(reader)
    finally:
        reader.close()


@pytest.mark.anyio
async def test_the_event_loop_awaits_commits_without_blocking(store: LogStore) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0)

    async with LogWriter(store) as writer, anyio.create_task_group() as group:
        group.start_soon(ticker)
        await writer.write_async(CreateRun("r1", "cleanup", "p", 5, origin="cli"))
        async with anyio.create_task_group() as writers:
            for n in range(500):
                writers.start_soon(writer.write_async, AppendLogs([row(n)]))
        with pytest.raises(StoreError, match="cannot go from queued to completed"):
            await writer.write_async(TransitionRun("r1", RunStatus.COMPLETED))
        group.cancel_scope.cancel()
    assert ticks > 0
    assert committed_count(store.path) == 501  # 500 rows and the run's status row


def test_readers_in_other_processes_never_block_or_fail_while_the_writer_writes(
    store: LogStore,
) -> None:
    reader_script = (
        "import sqlite3, sys, time\n"
        "last = 0\n"
        "deadline = time.monotonic() + 60\n"
        "while time.monotonic() < deadline:\n"
        "    c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)\n"
        "    n = c.execute('SELECT count(*) FROM logs').fetchone()[0]\n"
        "    c.close()\n"
        "    assert n >= last, (n, last)\n"
        "    last = n\n"
        "    if n >= 20000: break\n"
        "print(last)\n"
    )
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", reader_script, str(store.path)], stdout=subprocess.PIPE
        )
        for _ in range(3)
    ]
    with LogWriter(store) as writer:
        for batch in range(200):
            writer.append(*(row(batch * 100 + n) for n in range(100)))
            if batch % 20 == 0:
                time.sleep(0.01)  # let the readers interleave with the commits
    outputs = [reader.communicate(timeout=90)[0] for reader in readers]
    assert all(reader.returncode == 0 for reader in readers)
    assert [int(out) for out in outputs] == [20000, 20000, 20000]


class Unwritable:
    """Stands in for a full disk: while `full`, every apply fails as SQLite says it then."""

    def __init__(self, store: LogStore) -> None:
        self.full = False
        self._apply = store.apply

    def __call__(self, ops: object, connection: object) -> None:
        if self.full:
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = 13  # type: ignore[attr-defined]
            raise error
        self._apply(ops, connection)  # type: ignore[arg-type]


def test_a_store_that_cannot_be_written_stalls_the_writer_and_nothing_waiting_is_lost(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Unwritable(store)
    monkeypatch.setattr(store, "apply", disk)
    ended: list[float] = []
    with LogWriter(store, retry_max_s=0.05, on_stall_end=lambda _, s: ended.append(s)) as writer:
        writer.write(AppendLogs([row(0)]))
        disk.full = True
        acked = writer.submit(AppendLogs([row(1)]))
        for n in range(2, 102):
            writer.post(AppendLogs([row(n)]))
        deadline = time.monotonic() + 10
        while writer.stall is None and time.monotonic() < deadline:
            time.sleep(0.01)
        stall = writer.stall
        assert stall is not None
        assert "disk is full" in stall.error
        time.sleep(0.2)
        assert not acked.done()  # not failed: it waits for the disk
        assert committed_count(store.path) == 1
        disk.full = False
        acked.result(timeout=10)
    assert writer.stall is None
    assert committed_count(store.path) == 102  # in order, none lost
    assert len(ended) == 1
    assert writer.stats.stalls == 1


def test_a_long_stall_retries_at_most_retry_max_s_apart_so_recovery_is_prompt(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backoff doubles from 50 ms but never past `retry_max_s`: after 1.5 s of a full disk,
    a write waits at most about that long once the disk has room again (unbounded, the next
    retry would be seconds away)."""
    disk = Unwritable(store)
    monkeypatch.setattr(store, "apply", disk)
    with LogWriter(store, retry_max_s=0.1) as writer:
        disk.full = True
        acked = writer.submit(AppendLogs([row(1)]))
        time.sleep(1.5)
        assert not acked.done()
        disk.full = False
        freed = time.monotonic()
        acked.result(timeout=10)
        waited = time.monotonic() - freed
    assert waited < 1.0, f"the write committed {waited:.2f} s after the disk had room"


def test_posted_rows_beyond_max_held_are_dropped_and_counted_while_stalled(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = Unwritable(store)
    monkeypatch.setattr(store, "apply", disk)
    ends: list[tuple[int, float]] = []
    with LogWriter(
        store, max_held=10, retry_max_s=0.05, on_stall_end=lambda s, t: ends.append((s.dropped, t))
    ) as writer:
        disk.full = True
        writer.post(AppendLogs([row(0)]))
        deadline = time.monotonic() + 10
        while writer.stall is None and time.monotonic() < deadline:
            time.sleep(0.01)
        for n in range(1, 51):
            writer.post(AppendLogs([row(n)]))
        acked = writer.submit(AppendLogs([row(99)]))  # acknowledged writes are never dropped
        stall = writer.stall
        assert stall is not None
        assert stall.dropped == 40
        disk.full = False
        acked.result(timeout=10)
    assert committed_count(store.path) == 12  # the first, 10 held, the acknowledged one
    assert [dropped for dropped, _ in ends] == [40]


def test_a_wrong_write_still_fails_alone_and_does_not_stall(store: LogStore) -> None:
    with LogWriter(store) as writer:
        bad = writer.submit(TransitionRun("no-such-run", RunStatus.COMPLETED))
        with pytest.raises(StoreError):
            bad.result(timeout=10)
        assert writer.stall is None


def test_operations_together_commit_or_fail_as_one_even_when_their_batch_is_split(
    store: LogStore,
) -> None:
    store.apply([CreateRun("r1", "wf", "p", 5, "cli")])
    with LogWriter(store) as writer:
        good = writer.submit(AppendLogs([row(1)]))
        together = writer.submit(
            Together(
                (
                    TransitionRun("r1", RunStatus.STARTED),
                    AppendMessage("r1", "wf", 0, START, "p"),
                    TransitionRun("ghost", RunStatus.STARTED),  # fails: no such run
                )
            )
        )
        good.result(timeout=10)
        with pytest.raises(StoreError, match="no workflow run"):
            together.result(timeout=10)
    run = store.run("r1")
    assert run is not None
    assert run.status is RunStatus.QUEUED  # the start did not commit without the rest
    assert store.messages("r1") == []
    assert committed_count(store.path) == 2  # the queued status row and the good row


def test_the_writer_thread_survives_an_error_it_did_not_expect(store: LogStore) -> None:
    def broken_report(exc: Exception) -> None:
        raise RuntimeError("the failure report itself failed")

    with LogWriter(store, on_failure=broken_report) as writer:
        writer.post(TransitionRun("ghost", RunStatus.STARTED))  # fails; its report raises
        writer.write(AppendLogs([row(1)]))  # the writer goes on
    assert committed_count(store.path) == 1


def test_a_stall_ending_while_the_writer_closes_commits_each_held_row_once(
    store: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's listener posts a `store.stall` row when a stall ends; during close that post
    is refused, and the refusal must not make the committed batch look failed (and be applied
    again, row by row)."""
    disk = Unwritable(store)
    monkeypatch.setattr(store, "apply", disk)
    writer = LogWriter(
        store,
        retry_max_s=0.05,
        on_stall_end=lambda stall, _: writer.post(
            AppendLogs([LogRow("kernel", LogType.STORE_STALL, {})])
        ),
    )
    writer.start()
    disk.full = True
    for n in range(50):
        writer.post(AppendLogs([row(n)]))
    deadline = time.monotonic() + 10
    while writer.stall is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.stall is not None
    closing = threading.Thread(target=writer.close)
    closing.start()
    time.sleep(0.2)  # close() has begun and waits for the held rows
    disk.full = False
    closing.join(timeout=30)
    assert not closing.is_alive()
    assert committed_count(store.path) == 50  # each once
