"""`nerve sense query|schema`, `nerve workflow list|inspect|thread`, `nerve store archive`:
the read side of the stores, through the real command, without a daemon."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from nerve_core import START, LogType, RunStatus, Workspace
from nerve_store import (
    AppendMessage,
    CreateRun,
    LogRow,
    LogStore,
    TransitionRun,
    open_sense_db,
    read_archive_day,
)
from nerve_store.archive import DAY_MS

from .conftest import NERVE, run_nerve


@pytest.fixture
def ws(workspace: Path) -> Workspace:
    """The `nerve init` workspace with a filled sense DB and logs.db."""
    ws = Workspace(workspace)
    engine = open_sense_db(ws, "load-average")
    with engine.begin() as connection:
        for n in range(5):
            connection.exec_driver_sql(
                "INSERT INTO samples (ts, load1, load5, load15) VALUES (?, ?, ?, ?)",
                (1000 + n, n / 10, 0.5, 0.25),
            )
    engine.dispose()
    with LogStore.open(ws.logs_db) as store:
        store.apply([CreateRun("run-a", "load-report", "why slow?", 5, origin="cli", ts=1_000)])
        store.apply([TransitionRun("run-a", RunStatus.STARTED, ts=1_001)])
        store.apply([AppendMessage("run-a", "load-report", 0, START, "why slow?", ts=1_002)])
        store.apply(
            [AppendMessage("run-a", "load-report", 1, "reader", {"samples": [1, 2]}, ts=1_003)]
        )
        store.apply([AppendMessage("run-a", "load-report", 2, "reporter", "all fine", ts=1_004)])
        store.apply([TransitionRun("run-a", RunStatus.COMPLETED, ts=1_005)])
        store.apply(
            [CreateRun("run-b", "load-report", "again", 5, origin="load-average", ts=2_000)]
        )
    return ws


def test_sense_query_without_sql_lists_tables_with_row_counts(ws: Workspace) -> None:
    result = run_nerve("sense", "query", "load-average", "--json", cwd=ws.root)
    assert result.code == 0, result.err
    assert json.loads(result.out) == [{"table": "samples", "rows": 5}]


def test_sense_query_runs_read_only_sql_with_a_limit(ws: Workspace) -> None:
    result = run_nerve(
        "sense",
        "query",
        "load-average",
        "SELECT ts, load1 FROM samples ORDER BY ts",
        "--json",
        "--limit",
        "2",
        cwd=ws.root,
    )
    assert result.code == 0, result.err
    assert json.loads(result.out) == [{"ts": 1000, "load1": 0.0}, {"ts": 1001, "load1": 0.1}]
    human = run_nerve(
        "sense", "query", "load-average", "SELECT count(*) AS n FROM samples", cwd=ws.root
    )
    assert human.code == 0
    assert human.out.split() == ["n", "5"]


READ_ONLY = "error: refused: `nerve sense query` is read-only (not authorized)"


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("DELETE FROM samples", READ_ONLY),
        ("INSERT INTO samples VALUES (1, 1, 1, 1)", READ_ONLY),
        ("DROP TABLE samples", READ_ONLY),
        ("PRAGMA query_only = 0", READ_ONLY),
        ("ATTACH DATABASE 'x.db' AS x", READ_ONLY),
        (
            "SELECT 1; DELETE FROM samples",
            "error: query failed: You can only execute one statement at a time.",
        ),
        ("WITH x AS (SELECT 1) UPDATE samples SET load1 = 9", READ_ONLY),
    ],
)
def test_sense_query_refuses_every_write_and_changes_nothing(
    ws: Workspace, sql: str, refusal: str
) -> None:
    result = run_nerve("sense", "query", "load-average", sql, cwd=ws.root)
    assert result.code == 1
    assert result.err.strip() == refusal  # the guard's refusal, not some other error
    count = run_nerve(
        "sense", "query", "load-average", "SELECT count(*) AS n FROM samples", "--json", cwd=ws.root
    )
    assert json.loads(count.out) == [{"n": 5}]
    assert not (ws.root / "x.db").exists()


def test_sense_query_of_a_bad_name_or_a_sense_without_a_db_is_a_clear_error(ws: Workspace) -> None:
    bad = run_nerve("sense", "query", "../../etc", cwd=ws.root)
    assert (bad.code, bad.err.startswith('error: invalid sense name "../../etc"')) == (1, True)
    missing = run_nerve("sense", "query", "nothing-here", cwd=ws.root)
    assert missing.code == 1
    assert 'sense "nothing-here" has no database yet' in missing.err


def test_sense_schema_prints_the_create_statements(ws: Workspace) -> None:
    result = run_nerve("sense", "schema", "load-average", cwd=ws.root)
    assert result.code == 0, result.err
    assert "CREATE TABLE samples" in result.out
    assert "CREATE INDEX samples_ts ON samples (ts);" in result.out


def test_workflow_list_shows_runs_in_flight_and_all_with_json(ws: Workspace) -> None:
    in_flight = json.loads(run_nerve("workflow", "list", "--json", cwd=ws.root).out)
    assert [run["runId"] for run in in_flight] == ["run-b"]
    everything = json.loads(run_nerve("workflow", "list", "--all", "--json", cwd=ws.root).out)
    assert [(run["runId"], run["status"]) for run in everything] == [
        ("run-b", "queued"),
        ("run-a", "completed"),
    ]
    paged = json.loads(
        run_nerve(
            "workflow", "list", "--all", "--limit", "1", "--offset", "1", "--json", cwd=ws.root
        ).out
    )
    assert [run["runId"] for run in paged] == ["run-a"]
    human = run_nerve("workflow", "list", "--all", "--workflow", "load-report", cwd=ws.root)
    assert human.code == 0
    assert "run-a" in human.out
    assert "completed" in human.out


def test_workflow_list_in_a_fresh_workspace_says_there_are_no_runs(workspace: Path) -> None:
    result = run_nerve("workflow", "list", cwd=workspace)
    assert result.code == 0
    assert "no runs in flight" in result.out


def test_workflow_inspect_shows_metadata_and_paginated_log_lines(ws: Workspace) -> None:
    data = json.loads(run_nerve("workflow", "inspect", "run-a", "--json", cwd=ws.root).out)
    assert data["run"]["status"] == "completed"
    assert data["run"]["rounds"] == 2
    assert [line["type"] for line in data["logs"]] == [
        "workflow.status",
        "workflow.status",
        "workflow.message",
        "workflow.message",
        "workflow.message",
        "workflow.status",
    ]
    page = json.loads(
        run_nerve(
            "workflow", "inspect", "run-a", "--json", "--limit", "2", "--offset", "2", cwd=ws.root
        ).out
    )
    assert [line["type"] for line in page["logs"]] == ["workflow.message", "workflow.message"]
    human = run_nerve("workflow", "inspect", "run-a", cwd=ws.root)
    assert "why slow?" in human.out
    missing = run_nerve("workflow", "inspect", "nope", cwd=ws.root)
    assert missing.code == 1
    assert "no workflow run 'nope'" in missing.err


def test_workflow_thread_prints_rounds_with_before_and_budget(ws: Workspace) -> None:
    data = json.loads(run_nerve("workflow", "thread", "run-a", "--json", cwd=ws.root).out)
    assert [(m["round"], m["role"]) for m in data["messages"]] == [
        (0, START),
        (1, "reader"),
        (2, "reporter"),
    ]
    trimmed = json.loads(
        run_nerve(
            "workflow", "thread", "run-a", "--before", "2", "--budget", "20", "--json", cwd=ws.root
        ).out
    )
    assert [m["round"] for m in trimmed["messages"]] == [1]
    assert trimmed["omitted"] == 1
    human = run_nerve("workflow", "thread", "run-a", cwd=ws.root)
    assert "round 0 · START" in human.out
    assert "all fine" in human.out


def test_store_archive_moves_old_days_and_a_rerun_changes_nothing(ws: Workspace) -> None:
    with LogStore.open(ws.logs_db) as store:
        store.append(
            *(
                LogRow("load-average", LogType.SIGNAL, {"n": n}, ts=5 * DAY_MS + n)
                for n in range(10)
            )
        )
        total = store.count_logs()
    result = run_nerve("store", "archive", "--older-than", "1d", "--json", cwd=ws.root)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["days"] == ["1970-01-01", "1970-01-06"]
    assert report["rows"] == total
    archived = sum(len(list(read_archive_day(p))) for p in ws.archive_dir.glob("*.jsonl"))
    assert archived == total
    again = run_nerve("store", "archive", "--older-than", "1d", cwd=ws.root)
    assert again.code == 0
    assert "nothing to archive" in again.out


def test_store_archive_rejects_a_bad_duration_as_a_usage_error(ws: Workspace) -> None:
    result = run_nerve("store", "archive", "--older-than", "soon", cwd=ws.root)
    assert result.code == 2
    assert "invalid duration" in result.err


def test_store_archive_syncs_each_file_and_its_folder_before_it_deletes_the_rows(
    ws: Workspace, tmp_path: Path
) -> None:
    """Traced with strace: for each day, the temp file is fsynced, renamed over the day's file,
    the folder fsynced, and only then is anything written to logs.db's WAL (the delete). A crash
    or a power cut between any two steps leaves every row in logs.db or in a synced file."""
    with LogStore.open(ws.logs_db) as store:
        store.append(*(LogRow("load-average", LogType.SIGNAL, {"n": n}, ts=n) for n in range(10)))
    trace = tmp_path / "trace"
    strace = [
        "strace", "-f", "-y", "-qq", "-o", str(trace),
        "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,pwrite64,write",
    ]  # fmt: skip
    command = [*strace, str(NERVE), "store", "archive", "--older-than", "1d"]
    done = subprocess.run(command, cwd=ws.root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines()]
    day = ".1970-01-01.jsonl.tmp"

    def first(what: str, predicate: Callable[[str], bool]) -> int:
        found = [n for n, call in enumerate(calls) if predicate(call)]
        assert found, f"no {what} among the traced calls: {calls}"
        return found[0]

    synced = first("file fsync", lambda c: c.startswith(("fsync(", "fdatasync(")) and day in c)
    renamed = first("rename", lambda c: c.startswith("rename") and day in c)
    folder = str(ws.archive_dir) + ">"
    dir_synced = first(
        "folder fsync", lambda c: c.startswith("fsync(") and c.split(")")[0].endswith(folder)
    )
    deleted = first(
        "WAL write", lambda c: "logs.db-wal>" in c and c.startswith(("pwrite64(", "write("))
    )
    assert synced < renamed < dir_synced < deleted, calls


def test_store_recover_names_a_damaged_first_page_from_the_start_and_answers_json(
    workspace: Path,
) -> None:
    """The rows before the first readable one have no rowid to name: `start`. `--json` prints
    the same report (it failed with a traceback: the table names were SQLAlchemy's str
    subclass, which orjson refuses as keys)."""
    from ..store.test_recover import filled, garble_leaf

    logs_db = Workspace(workspace).logs_db
    logs_db.parent.mkdir(parents=True, exist_ok=True)
    _, on_page = garble_leaf(filled(logs_db), 0.0)
    repaired = run_nerve("store", "recover", cwd=workspace)
    assert repaired.code == 0, repaired.err
    assert f"logs: 1 range of rowids could not be read: start–{on_page}" in repaired.out
    again = run_nerve("store", "recover", "--json", cwd=workspace)
    assert again.code == 0, again.err
    recovered = json.loads(again.out)
    assert (recovered["kept"]["logs"], recovered["skipped"]) == (3_000 - on_page, {})
