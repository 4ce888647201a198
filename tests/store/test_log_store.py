from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from sqlite3 import IntegrityError

import pytest
from sqlalchemy import text

from nerve_core import END, START, LogType, RunStatus
from nerve_core.errors import StoreError
from nerve_store import (
    AppendLogs,
    AppendMessage,
    CreateRun,
    LogRow,
    LogStore,
    SetMeta,
    TransitionRun,
)
from nerve_store.schema import SCHEMA_VERSION


def rows(count: int, source: str = "cpu", start_ts: int = 1_000) -> list[LogRow]:
    return [LogRow(source, LogType.SIGNAL, {"n": i}, ts=start_ts + i) for i in range(count)]


def test_a_new_store_is_in_wal_mode_at_the_current_schema_version(store: LogStore) -> None:
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert store.meta("schema_version") == str(SCHEMA_VERSION)


def test_an_older_file_is_brought_forward_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    sqlite3.connect(path).close()  # an empty file: version 0
    LogStore.open(path).close()
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        raw.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer than this nerve understands"):
        LogStore.open(path)


def test_appended_rows_come_back_with_every_column(store: LogStore) -> None:
    store.append(LogRow("disk", LogType.COMPUTE_ERROR, {"error": "boom"}, ref_id="r1", ts=42))
    [record] = store.logs()
    assert (record.ts, record.source, record.type, record.ref_id, record.payload) == (
        42,
        "disk",
        "compute.error",
        "r1",
        {"error": "boom"},
    )


def test_queries_filter_by_source_type_ref_and_time_with_paging(store: LogStore) -> None:
    store.apply([AppendLogs(rows(10, "cpu")), AppendLogs(rows(5, "mem", start_ts=2_000))])
    store.append(LogRow("cpu", LogType.COMPUTE_TIMEOUT, None, ref_id="x", ts=3_000))
    assert len(store.logs(source="cpu")) == 11
    assert len(store.logs(type=LogType.SIGNAL)) == 15
    assert [r.type for r in store.logs(ref_id="x")] == ["compute.timeout"]
    assert [r.payload["n"] for r in store.logs(source="cpu", since=1_003, until=1_006)] == [3, 4, 5]
    page = store.logs(source="cpu", type=LogType.SIGNAL, limit=3, offset=2)
    assert [r.payload["n"] for r in page] == [2, 3, 4]
    assert store.logs(limit=1, newest_first=True)[0].ts == 3_000


def test_a_payload_that_is_not_json_fails_the_write_and_writes_nothing(store: LogStore) -> None:
    with pytest.raises(StoreError, match="not JSON-serialisable"):
        store.apply([AppendLogs(rows(3)), AppendLogs([LogRow("cpu", LogType.SIGNAL, object())])])
    assert store.count_logs() == 0


def create(store: LogStore, run_id: str, ts: int, workflow: str = "cleanup") -> None:
    store.apply([CreateRun(run_id, workflow, "disk full", 10, origin="disk", ts=ts)])


def test_a_run_walks_its_lifecycle_with_a_status_row_for_each_transition(store: LogStore) -> None:
    create(store, "r1", ts=100)
    store.apply([TransitionRun("r1", RunStatus.STARTED, ts=110)])
    store.apply([TransitionRun("r1", RunStatus.CRASHED, reason="worker died", ts=120)])
    store.apply([TransitionRun("r1", RunStatus.STARTED, reason="resumed", ts=130)])
    store.apply([TransitionRun("r1", RunStatus.COMPLETED, ts=140)])
    run = store.run("r1")
    assert run is not None
    assert (run.status, run.created_at, run.started_at, run.ended_at) == (
        RunStatus.COMPLETED,
        100,
        110,
        140,
    )
    history = [r.payload for r in store.logs(ref_id="r1", type=LogType.WORKFLOW_STATUS)]
    assert [(h["status"], h["reason"]) for h in history] == [
        ("queued", None),
        ("started", None),
        ("crashed", "worker died"),
        ("started", "resumed"),
        ("completed", None),
    ]


def test_an_illegal_transition_is_refused_and_changes_nothing(store: LogStore) -> None:
    create(store, "r1", ts=100)
    store.apply([TransitionRun("r1", RunStatus.STARTED, ts=110)])
    store.apply([TransitionRun("r1", RunStatus.COMPLETED, ts=120)])
    with pytest.raises(StoreError, match="cannot go from completed to started"):
        store.apply([TransitionRun("r1", RunStatus.STARTED)])
    with pytest.raises(StoreError, match="no workflow run"):
        store.apply([TransitionRun("ghost", RunStatus.STARTED)])
    assert len(store.logs(ref_id="r1", type=LogType.WORKFLOW_STATUS)) == 3


def test_a_transition_and_its_log_row_commit_together_or_not_at_all(store: LogStore) -> None:
    create(store, "r1", ts=100)
    with pytest.raises(StoreError):
        store.apply([TransitionRun("r1", RunStatus.STARTED), TransitionRun("r1", RunStatus.QUEUED)])
    run = store.run("r1")
    assert run is not None
    assert run.status is RunStatus.QUEUED
    assert len(store.logs(ref_id="r1", type=LogType.WORKFLOW_STATUS)) == 1


def test_runs_list_newest_first_filtered_by_status_and_workflow(store: LogStore) -> None:
    for index in range(6):
        create(store, f"r{index}", ts=100 + index, workflow="a" if index % 2 else "b")
    store.apply([TransitionRun("r0", RunStatus.DROPPED)])
    assert [r.run_id for r in store.runs()] == ["r5", "r4", "r3", "r2", "r1", "r0"]
    assert [r.run_id for r in store.runs(workflow="a", limit=2)] == ["r5", "r3"]
    assert [r.run_id for r in store.runs(statuses=[RunStatus.DROPPED])] == ["r0"]
    assert [r.run_id for r in store.runs(limit=2, offset=2)] == ["r3", "r2"]


def test_unfinished_runs_are_listed_oldest_first_for_recovery(store: LogStore) -> None:
    for index in range(4):
        create(store, f"r{index}", ts=100 + index)
    store.apply([TransitionRun("r0", RunStatus.STARTED), TransitionRun("r1", RunStatus.CANCELLED)])
    store.apply([TransitionRun("r2", RunStatus.STARTED), TransitionRun("r2", RunStatus.CRASHED)])
    assert [(r.run_id, r.status) for r in store.unfinished_runs()] == [
        ("r0", RunStatus.STARTED),
        ("r2", RunStatus.CRASHED),
        ("r3", RunStatus.QUEUED),
    ]


def test_unfinished_runs_are_recovered_in_the_order_they_were_acknowledged_whatever_the_clock(
    store: LogStore,
) -> None:
    """A wall clock set back eight hours between two launches gives the second an earlier
    `created_at` (and run id): recovery still queues them in the order they were committed."""
    eight_hours = 8 * 3_600_000
    create(store, "20261203T200000-aaaaaaaa", ts=1_000 + eight_hours)
    create(store, "20261203T120000-bbbbbbbb", ts=1_000)  # set back
    create(store, "20261203T120001-cccccccc", ts=2_000)
    assert [r.run_id for r in store.unfinished_runs()] == [
        "20261203T200000-aaaaaaaa",
        "20261203T120000-bbbbbbbb",
        "20261203T120001-cccccccc",
    ]


def add_thread(store: LogStore, run_id: str, contents: list[str]) -> None:
    store.apply([AppendMessage(run_id, "cleanup", 0, START, "the prompt")])
    store.apply(
        [AppendMessage(run_id, "cleanup", i + 1, f"role{i % 2}", c) for i, c in enumerate(contents)]
    )


def test_messages_rebuild_the_thread_in_order_and_count_rounds(store: LogStore) -> None:
    create(store, "r1", ts=100)
    add_thread(store, "r1", ["a", {"b": [1, 2]}, None])
    thread = store.messages("r1")
    assert [(m.round, m.role, m.content) for m in thread] == [
        (0, START, "the prompt"),
        (1, "role0", "a"),
        (2, "role1", {"b": [1, 2]}),
        (3, "role0", None),
    ]
    run = store.run("r1")
    assert run is not None
    assert run.rounds == 3
    assert END not in {m.role for m in thread}


def test_thread_keeps_the_most_recent_rounds_before_a_round_within_a_budget(
    store: LogStore,
) -> None:
    create(store, "r1", ts=100)
    add_thread(store, "r1", ["x" * 10, "y" * 10, "z" * 10, "w" * 10])  # 12 chars each as JSON
    page = store.thread("r1", before=4, budget=30)
    assert [m.round for m in page.messages] == [2, 3]
    assert (page.total, page.omitted) == (5, 2)
    assert [m.round for m in store.thread("r1").messages] == [0, 1, 2, 3, 4]
    assert store.thread("r1", budget=5).messages == []


def test_meta_values_are_set_and_replaced(store: LogStore) -> None:
    store.apply([SetMeta("k", "1")])
    store.apply([SetMeta("k", "2")])
    assert store.meta("k") == "2"
    assert store.meta("missing") is None


def test_a_read_only_handle_reads_but_cannot_write(store: LogStore) -> None:
    store.append(*rows(3))
    reader = LogStore.open_readonly(store.path)
    try:
        assert reader.count_logs() == 3
        with pytest.raises(StoreError, match="read-only"):
            reader.append(*rows(1))
        with (
            reader.engine.connect() as connection,
            pytest.raises(Exception, match="not authorized"),
        ):
            connection.execute(text("DELETE FROM logs"))
    finally:
        reader.close()
    assert store.count_logs() == 3


def test_opening_a_missing_file_read_only_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"logs\.db: .* does not exist yet"):
        LogStore.open_readonly(tmp_path / "logs.db")


def test_a_version_1_file_gains_the_lineage_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:  # the tables as version 1 made them
        raw.executescript(
            "CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL,"
            " source TEXT NOT NULL, type TEXT NOT NULL, ref_id TEXT, payload TEXT);"
            "CREATE TABLE workflow_runs (run_id VARCHAR PRIMARY KEY, workflow TEXT NOT NULL,"
            " status TEXT NOT NULL, prompt TEXT NOT NULL, max_rounds INTEGER NOT NULL,"
            " payload TEXT, origin TEXT NOT NULL, created_at INTEGER NOT NULL, started_at INTEGER,"
            " ended_at INTEGER, updated_at INTEGER NOT NULL, rounds INTEGER DEFAULT 0 NOT NULL,"
            " error TEXT);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema_version', '1');"
            "INSERT INTO logs (ts, source, type, payload) VALUES (1, 'a', 'signal', '1');"
        )
    with LogStore.open(path) as store:
        assert store.meta("schema_version") == str(SCHEMA_VERSION)
        store.append(LogRow("a", LogType.SIGNAL, 2, cause="t-1", parent="s-1"))
        rows = store.logs()
        assert [row.payload for row in store.logs(parent="s-1")] == [2]
    assert sorted((row.payload, row.cause, row.parent) for row in rows) == [
        (1, None, None),
        (2, "t-1", "s-1"),
    ]
    with (
        contextlib.closing(sqlite3.connect(path)) as raw,
        raw,
    ):  # the lineage and key indexes are there, as a new file's
        indexes = {name for (name,) in raw.execute("SELECT name FROM sqlite_master")}
    assert {"logs_parent", "workflow_runs_key"} <= indexes


def test_a_key_makes_one_run_per_workflow(tmp_path: Path) -> None:
    with LogStore.open(tmp_path / "logs.db") as store:
        store.apply([CreateRun("r1", "w", "p", 5, "cli", key="k")])
        store.apply([CreateRun("r2", "v", "p", 5, "cli", key="k")])  # another workflow's
        store.apply([CreateRun("r3", "w", "p", 5, "cli"), CreateRun("r4", "w", "p", 5, "cli")])
        with pytest.raises(IntegrityError):
            store.apply([CreateRun("r5", "w", "p", 5, "cli", key="k")])
        found = store.run_by_key("w", "k")
        assert found is not None
        assert found.run_id == "r1"
        assert store.run_by_key("w", "other") is None


@pytest.mark.parametrize(("level", "pragma"), [("normal", 1), ("full", 2)])
def test_the_synchronous_level_chosen_in_nerve_yaml_is_the_writers(
    tmp_path: Path, level: str, pragma: int
) -> None:
    store = LogStore.open(tmp_path / "logs.db", synchronous=level)
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
    finally:
        store.close()


def test_a_writer_waits_for_a_write_lock_another_process_holds_instead_of_failing(
    store: LogStore,
) -> None:
    """`nerve store archive`, a backup or a database browser may hold the lock a moment."""
    hold = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('held', flush=True)\n"
        "time.sleep(1.0)\n"
        "db.execute('COMMIT')\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", hold, str(store.path)], stdout=subprocess.PIPE, text=True
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        began = time.monotonic()
        store.append(*rows(1))
        waited = time.monotonic() - began
        holder.wait(timeout=30)
    assert waited > 0.3  # it waited for the lock (and then wrote), it did not fail
    assert store.count_logs() == 1


def test_an_io_error_at_open_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """A WAL cut short while another process holds logs.db open (so SQLite trusts the index
    that process keeps, and reads frames past the WAL's end): an I/O error when nerve opens it,
    said in one line naming the file, not a traceback."""
    live = tmp_path / "live"
    store = LogStore.open(live / "logs.db")
    for n in range(20):  # a commit each: the WAL holds many frames
        store.apply([AppendLogs(rows(10, start_ts=n * 10))])
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("logs.db", "logs.db-wal", "logs.db-shm"):  # as a kill -9 leaves them
        (copy / name).write_bytes((live / name).read_bytes())
    store.close()
    path = copy / "logs.db"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as other:
        other.execute("SELECT count(*) FROM logs").fetchall()  # it holds the WAL index
        wal = copy / "logs.db-wal"
        with wal.open("r+b") as data:
            data.truncate(wal.stat().st_size // 2)
        with pytest.raises(StoreError) as refused:
            LogStore.open(path)
    message = str(refused.value)
    assert message.startswith(f"logs.db ({path}) could not be opened: disk I/O error")
    assert "\n" not in message
