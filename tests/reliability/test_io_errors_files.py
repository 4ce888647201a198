"""I/O errors on the files beside logs.db, injected with `strace --inject`: EIO on every fsync of
a sense's worker while it writes blobs (each compute fails with a clear error naming EIO, no
temp file is left, no row names a blob that is not there, and it writes again when the fault
ends), and EIO on the archive's fsyncs (`nerve store archive` fails saying so, no row leaves
logs.db, no day file is half written, and the next run archives each row once)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nerve_store import BlobStore

from ..cli.conftest import NERVE, run_nerve
from .conftest import Figure, daemon_workspace, query, wait_for

pytestmark = pytest.mark.slow

FAULT_S = 3.0
BLOBBY = """
import os

def compute(ctx):
    return ctx.blobs.write(os.urandom(4096))  # a new blob each time, named in the signal
"""


@pytest.fixture
def root() -> Iterator[Path]:
    config = "senses:\n  blobby: {}\nreflexes:\n  - sense: blobby\n    interval: 100ms\n"
    with daemon_workspace(config, {"blobby": BLOBBY}) as root:
        yield root


def worker_pid(root: Path, sense: str) -> int:
    listed = run_nerve("sense", "list", "--json", cwd=root)
    assert listed.code == 0, listed.err
    return int(next(s["workerPid"] for s in json.loads(listed.out) if s["name"] == sense))


def errors(root: Path) -> list[str]:
    rows = query(root, "SELECT payload FROM logs WHERE type = 'compute.error' ORDER BY id")
    return [json.loads(payload)["error"] for (payload,) in rows]


def signals(root: Path) -> list[str]:
    rows = query(root, "SELECT payload FROM logs WHERE type = 'signal' AND source = 'blobby'")
    return [json.loads(payload) for (payload,) in rows]


def inject(pid: int, call: str, *more: str) -> subprocess.Popen[bytes]:
    """EIO on every `call` of `pid` (and its threads) until terminated."""
    return subprocess.Popen(
        ["strace", "-f", "-qq", "-p", str(pid), "-e", f"trace={call}",
         "-e", f"inject={call}:error=EIO", "-o", "/dev/null", *more],
    )  # fmt: skip


def test_eio_on_a_workers_fsyncs_fails_its_blob_writes_clearly_and_leaves_nothing_half_made(
    root: Path, figure: Figure
) -> None:
    assert run_nerve("start", cwd=root).code == 0
    wait_for(lambda: len(signals(root)) >= 5, timeout=30)
    strace = inject(worker_pid(root, "blobby"), "fsync")
    try:
        wait_for(lambda: len(errors(root)) >= 5, timeout=30)
        time.sleep(FAULT_S)
    finally:
        strace.terminate()
        strace.wait(timeout=30)
    failed = errors(root)
    ended_with = len(signals(root))
    wait_for(lambda: len(signals(root)) >= ended_with + 5, timeout=30)  # writes again
    assert run_nerve("stop", cwd=root).code == 0
    assert all("could not be written in" in error and "(EIO)" in error for error in failed)
    blobs = root / "data/blobs"
    assert [p.name for p in blobs.rglob(".tmp-*")] == []  # no temp file left by a failed write
    named = signals(root)
    store = BlobStore(blobs)
    for digest in named:
        store.read(digest)  # every blob a row names is there and whole
    figure(
        f"EIO on every fsync of a sense's worker for {FAULT_S:g} s, the sense writing a blob @100 ms",
        f"{len(failed)} computes failed, each naming EIO and the blob's folder; no temp file "
        f"left; {len(named)} blobs named by signals, all readable; writing again at once after",
    )


def test_eio_on_the_archives_fsyncs_moves_nothing_and_the_next_run_archives_once(
    root: Path, figure: Figure
) -> None:
    assert run_nerve("start", cwd=root).code == 0
    assert run_nerve("stop", cwd=root).code == 0
    old = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp() * 1000)
    with_rows = ",".join(f"({old + n}, 'old', 'signal', '{{}}')" for n in range(100))
    insert = f"INSERT INTO logs (ts, source, type, payload) VALUES {with_rows};"
    subprocess.run(["sqlite3", str(root / "data/logs.db"), insert], check=True)  # as a user would
    failed = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=fsync", "-e", "inject=fsync:error=EIO",
         "-o", "/dev/null", str(NERVE), "store", "archive", "--older-than", "7d"],
        cwd=root, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    assert "Input/output error" in failed.stderr or "EIO" in failed.stderr, failed.stderr
    assert query(root, "SELECT count(*) FROM logs WHERE source = 'old'") == [(100,)]
    day = root / "data/archive/logs/2026-11-01.jsonl"
    assert not day.exists()  # the day file is renamed into place only once synced
    done = run_nerve("store", "archive", "--older-than", "7d", cwd=root)
    assert done.code == 0, done.err
    assert query(root, "SELECT count(*) FROM logs WHERE source = 'old'") == [(0,)]
    lines = [json.loads(line) for line in day.read_text().splitlines()]
    assert sorted(row["ts"] for row in lines if row["source"] == "old") == [
        old + n for n in range(100)
    ]
    assert list((root / "data/archive/logs").glob(".*.tmp")) == []  # the failed run's temp gone
    figure(
        "EIO on every fsync of `nerve store archive`",
        "it failed in one line naming the I/O error; the 100 rows stayed in logs.db, no day "
        "file was made; the next run archived each of them once",
    )
