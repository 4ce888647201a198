"""Power loss: the daemon's data/ is on a filesystem that loses every write not yet fsynced
(tests/reliability/lossy_fs.py, a FUSE passthrough; a random share of what was written but not
synced reaches the disk anyway, sector by sector, so WAL frames are left torn), the power is cut
at a random moment under a stream of acknowledged launches, and the disk is read as it would be
found afterwards.

Under `synchronous: full` every acknowledged run is there, every blob a message names is readable,
and `integrity_check` is ok, in every cycle. Under `normal` the database is consistent in every
cycle and the last acknowledged launches may be gone: how many, and how old, is measured."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nerve_core import LogType
from nerve_store import LogRow, LogStore
from nerve_store.blobs import BlobStore

from ..cli.conftest import run_nerve
from ..scale import scaled
from .conftest import RETURN_ONE, Figure, Stream, daemon_workspace, kill_daemon, ms, wait_for
from .lossy_fs import LossyMount

pytestmark = pytest.mark.slow

KEEP = """
from nerve_core.workflow import END, START, WorkflowDefinition


def moderator(thread):
    return "keep" if thread[-1].role == START else END


def keep(ctx):  # a blob of its own for every run, named in the run's message
    return ctx.blobs.write(ctx.run_id.encode() * 64)


definition = WorkflowDefinition(moderator=moderator, roles={"keep": keep})
"""
CONFIG = """
store: {synchronous: %s, archive_after: 1d}
senses:
  tick: {}
reflexes:
  - sense: tick
    interval: %s
workflows:
  keep: {concurrency: 4, overflow: queue, max_queue: 5000}
"""
CYCLES = {"full": scaled(2, 200), "normal": scaled(1, 50)}
EARLY = 0.3  # the chance that a sector written but not yet synced reaches the disk anyway
OLD_DAY = "2026-11-01"  # a day of old rows, archived by the first start
OLD = [round(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp() * 1000) + n for n in range(500)]


@dataclass
class Found:
    """What one cycle found on the disk after the power came back."""

    acknowledged: int = 0
    lost: list[float] = field(default_factory=list)  # seconds from each lost ack to the cut
    blobs: int = 0
    archived: int = 0  # old rows in the archive file (the rest still in logs.db)


@pytest.fixture
def lossy(request: pytest.FixtureRequest) -> Iterator[tuple[Path, LossyMount]]:
    # Under normal, a light load: SQLite's own checkpoints (every ~1,000 pages) sync the WAL
    # every second or two under a heavy one, and would hide a sync of the writer's that never came.
    config = CONFIG % (request.param, "50ms" if request.param == "full" else "1s")
    with daemon_workspace(config, {"tick": RETURN_ONE}, {"keep": KEEP}) as root:
        disk = root.parent / "disk"
        with LogStore.open(disk / "logs.db") as store:  # old rows for the first start to archive
            store.append(*(LogRow("old", LogType.SIGNAL, {"n": ts}, ts=ts) for ts in OLD))
        (root / "data").mkdir()
        state = root.parent / "state" / "durable.json"
        mount = LossyMount(disk, root / "data", state, early=EARLY)
        mount.state.parent.mkdir()
        try:
            yield root, mount
        finally:
            kill_daemon(root)
            mount.close()


def one_cycle(root: Path, mount: LossyMount, chance: random.Random, normal: bool) -> Found:
    mount.mount()
    started = run_nerve("start", cwd=root)
    assert started.code == 0, started.err
    # Under normal, slow (see `lossy`) and longer than the writer's sync period.
    stream = Stream(root, "keep", pace_s=0.25 if normal else 0.0)
    client = threading.Thread(target=stream.run, args=(10**6, time.monotonic() + 120))
    client.start()
    try:
        wait_for(lambda: len(stream.acknowledged) >= 5, timeout=60)
        time.sleep(chance.uniform(4.0, 4.5) if normal else chance.uniform(0.0, 0.5))
    finally:
        cut_at = time.monotonic()
        kill_daemon(root)  # the power cut takes every process with it
        stream.stopped.set()
        client.join()
    mount.power_cut()
    disk = mount.live
    found = Found(acknowledged=len(stream.acknowledged))
    with (
        contextlib.closing(sqlite3.connect(disk / "logs.db")) as db,
        db,
    ):  # as the next start opens it
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs = {run_id for (run_id,) in db.execute("SELECT run_id FROM workflow_runs")}
        digests = [
            digest
            for (digest,) in db.execute(
                "SELECT json_extract(payload, '$.content') FROM logs"
                " WHERE type = 'workflow.message' AND json_extract(payload, '$.role') = 'keep'"
            )
        ]
        old_kept = {ts for (ts,) in db.execute("SELECT ts FROM logs WHERE source = 'old'")}
    day = disk / "archive/logs" / f"{OLD_DAY}.jsonl"
    lines = day.read_text().splitlines() if day.exists() else []
    archived = [row["ts"] for row in map(json.loads, lines) if row["source"] == "old"]
    assert len(archived) == len(set(archived))  # no row archived twice
    assert old_kept | set(archived) == set(OLD)  # every old row in logs.db or the archive
    found.archived = len(archived)
    found.lost = [
        cut_at - acked_at
        for run_id, acked_at in zip(stream.acknowledged, stream.acked_at, strict=True)
        if run_id not in runs
    ]
    blobs = BlobStore(disk / "blobs")
    for digest in digests:
        blobs.read(digest)  # present and whole, or this raises
    found.blobs = len(digests)
    return found


ARCHIVED = (
    f"the {len(OLD)} rows of an old day, archived by the first start: after every cut each in "
    "logs.db or the archive, none twice"
)


@pytest.mark.timeout(scaled(120, 3600))  # full: ~5 s a cycle
@pytest.mark.parametrize("lossy", ["full", "normal"], indirect=True)
def test_a_power_cut_under_launches_keeps_what_synchronous_promises(
    lossy: tuple[Path, LossyMount], figure: Figure
) -> None:
    root, mount = lossy
    mode = "full" if "synchronous: full" in (root / "nerve.yaml").read_text() else "normal"
    chance = random.Random(29)
    cycles = [one_cycle(root, mount, chance, mode == "normal") for _ in range(CYCLES[mode])]
    acknowledged = sum(cycle.acknowledged for cycle in cycles)
    lost = [age for cycle in cycles for age in cycle.lost]
    blobs = sum(cycle.blobs for cycle in cycles)
    # The archive's day file is synced before its rows leave logs.db: it is there after any cut.
    assert [cycle.archived for cycle in cycles] == [len(OLD)] * len(cycles)
    if mode == "full":
        assert blobs > 0  # the roles ran and named their blobs before some cuts
        assert lost == [], f"{len(lost)} acknowledged runs lost to a power cut"
        figure(
            "power cut under launches, synchronous: full (FUSE passthrough losing what is not "
            "fsynced)",
            f"{len(cycles)} cycles: {acknowledged}/{acknowledged} acknowledged runs present, "
            f"{blobs} blobs named by messages all readable, integrity_check ok every cycle; "
            f"{ARCHIVED}",
        )
        return
    # The writer fsyncs the WAL at most 1 s after a commit: older acks survive (4–5 s of them
    # were lost, every cycle, when it did not).
    assert max(lost, default=0) < 2.5, ms(lost)
    worst = max((len(cycle.lost) for cycle in cycles), default=0)
    window = f"lost acks were {ms(lost)} old at the cut" if lost else "none lost"
    figure(
        "power cut under launches, synchronous: normal",
        f"{len(cycles)} cycles: integrity_check ok every cycle; {len(lost)} of {acknowledged} "
        f"acknowledged runs lost (at most {worst} in one cut); {window}; {blobs} blobs named "
        f"by messages all readable; {ARCHIVED}",
    )
