"""I/O errors injected into a running daemon with `strace --inject` (EIO on the writes of
logs.db's WAL, or on its fsyncs under `synchronous: full`): logs.db stalls, `health` says why,
`trigger-workflow` is refused while it lasts ("nothing was recorded"), the rows the senses make
meanwhile are held; when the fault ends, they commit, launches are accepted again, and no
acknowledged run is lost; `integrity_check` ok."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from .conftest import ECHO, RETURN_ONE, Figure, daemon_workspace, query, wait_for

pytestmark = pytest.mark.slow

FAULT_S = 3.0


def config(synchronous: str) -> str:
    return (
        f"store: {{synchronous: {synchronous}}}\n"
        "senses:\n  tick: {}\n"
        "reflexes:\n  - sense: tick\n    interval: 100ms\n"
        "workflows:\n  echo: {concurrency: 4, overflow: queue}\n"
    )


@pytest.fixture(params=[("pwrite64", "normal"), ("fdatasync", "full")], ids=["write", "fsync"])
def case(request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    call, synchronous = request.param
    with daemon_workspace(config(synchronous), {"tick": RETURN_ONE}, {"echo": ECHO}) as root:
        yield root, call


def store_error(root: Path) -> str | None:
    status = run_nerve("status", "--json", cwd=root)
    assert status.code == 0, status.err
    error: str | None = json.loads(status.out)["storeError"]
    return error


def launch(root: Path) -> tuple[int, str]:
    done = run_nerve("workflow", "trigger", "echo", "--prompt", "hi", "--json", cwd=root)
    return done.code, (json.loads(done.out)["runId"] if done.code == 0 else done.err)


def test_an_injected_io_error_stalls_logs_db_and_loses_nothing_acknowledged(
    case: tuple[Path, str], figure: Figure
) -> None:
    root, call = case
    assert run_nerve("start", cwd=root).code == 0
    pid = int((root / "nerve.pid").read_text())
    acknowledged = []
    for _ in range(3):
        code, run_id = launch(root)
        assert code == 0, run_id
        acknowledged.append(run_id)
    wal = root / "data/logs.db-wal"
    strace = subprocess.Popen(  # EIO on every `call` on the WAL, for FAULT_S
        ["strace", "-f", "-qq", "-p", str(pid), "-e", f"trace={call}",
         "-e", f"inject={call}:error=EIO", "-P", str(wal), "-o", "/dev/null"],
    )  # fmt: skip
    fault_from = time.time()
    try:
        began = time.monotonic()
        wait_for(lambda: (store_error(root) or "").startswith("logs.db cannot be written"), 30)
        said = store_error(root)
        code, refused = launch(root)
        assert code == 1
        assert "nothing was recorded, try again later" in refused
        time.sleep(max(0.0, FAULT_S - (time.monotonic() - began)))
    finally:
        strace.terminate()  # the fault ends: strace detaches
        strace.wait(timeout=30)
    ended, fault_to = time.monotonic(), time.time()
    wait_for(lambda: store_error(root) is None, timeout=30)
    recovered_in = time.monotonic() - ended
    code, run_id = launch(root)
    assert code == 0, run_id
    acknowledged.append(run_id)
    runs = lambda: dict(query(root, "SELECT run_id, status FROM workflow_runs"))  # noqa: E731
    wait_for(lambda: all(runs().get(r) == "completed" for r in acknowledged), timeout=60)
    assert run_nerve("stop", cwd=root).code == 0
    assert said is not None
    assert "disk I/O error" in said
    [stall] = [
        json.loads(p) for (p,) in query(root, "SELECT payload FROM logs WHERE type='store.stall'")
    ]
    assert "disk I/O error" in stall["error"]
    assert stall["dropped"] == 0
    held = query(  # the tick's signals made while the WAL could not be written: kept, committed
        root,
        "SELECT count(*) FROM logs WHERE type = 'signal' AND ts BETWEEN ? AND ?",
        int(fault_from * 1000) + 1000,
        int(fault_to * 1000) - 500,
    )[0][0]
    assert held >= 10, held
    assert query(root, "PRAGMA integrity_check") == [("ok",)]
    figure(
        f"EIO injected on logs.db's WAL {'writes' if call == 'pwrite64' else 'fsyncs (synchronous: full)'} for {FAULT_S:g} s",
        f"stalled ({said}); a launch refused meanwhile, nothing recorded; writable again "
        f"{recovered_in:.1f} s after the fault ended, the {held}+ rows made meanwhile committed, 0 "
        "dropped; "
        f"{len(acknowledged)}/{len(acknowledged)} acknowledged runs completed; integrity_check ok",
    )
