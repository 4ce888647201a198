"""The whole daemon dies (SIGKILL) at random moments under a stream of acknowledged requests;
after each restart, everything it acknowledged is there and every run ends. A client that
retries each request with its idempotency key until it is answered makes no run twice."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nerve_core import RunStatus

from ..cli.conftest import run_nerve
from ..scale import scaled
from .conftest import (
    ECHO,
    RETURN_ONE,
    Figure,
    Stream,
    daemon_workspace,
    kill_daemon,
    ms,
    query,
    wait_for,
)

pytestmark = pytest.mark.slow

REQUESTS = scaled(600, 1_000)  # paced (below): the stream outlasts the kills however fast
PACE_S = 0.003  # launches take ~2 ms each: ~5 ms a request, 3 s for 600, before downtime
KILLS = scaled(2, 3)
CONFIG = """
senses:
  tick: {}
reflexes:
  - sense: tick
    interval: 50ms
workflows:
  quick: {concurrency: 4, overflow: queue, max_queue: 5000}
"""


@pytest.fixture
def root() -> Iterator[Path]:
    with daemon_workspace(CONFIG, {"tick": RETURN_ONE}, {"quick": ECHO}) as root:
        yield root


def run_table(root: Path) -> dict[str, str]:
    return dict(query(root, "SELECT run_id, status FROM workflow_runs"))


def test_sigkill_of_the_daemon_under_1000_acknowledged_requests_loses_none(
    root: Path, figure: Figure
) -> None:
    assert run_nerve("start", cwd=root).code == 0
    stream = Stream(root, "quick", pace_s=PACE_S)
    client = threading.Thread(target=stream.run, args=(REQUESTS, time.monotonic() + 120))
    client.start()
    chance = random.Random(7)
    restarts = []
    for _ in range(KILLS):  # at random moments while requests stream in
        time.sleep(chance.uniform(0.2, 1.2))
        if not client.is_alive():
            break
        kill_daemon(root)
        began = time.monotonic()
        started = run_nerve("start", cwd=root)
        assert started.code == 0, started.err
        restarts.append(time.monotonic() - began)
    client.join()
    assert len(stream.acknowledged) == REQUESTS
    assert len(restarts) == KILLS, "the stream ended before every kill: make it longer"

    def every_run_ended() -> bool:
        runs = run_table(root)
        return all(
            run_id in runs and RunStatus(runs[run_id]).terminal for run_id in stream.acknowledged
        )

    wait_for(every_run_ended, timeout=120)
    assert run_nerve("stop", cwd=root).code == 0
    runs = run_table(root)
    with contextlib.closing(sqlite3.connect(root / "data/logs.db")) as db, db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        queued_rows = {
            ref_id
            for (ref_id,) in db.execute(
                "SELECT ref_id FROM logs WHERE type = 'workflow.status'"
                " AND json_extract(payload, '$.status') IN ('queued', 'started')"
            )
        }
    missing = [run_id for run_id in stream.acknowledged if run_id not in queued_rows]
    assert missing == []  # each acknowledged run's first status row was committed with it
    ended = [RunStatus(runs[run_id]) for run_id in stream.acknowledged]
    completed = sum(1 for status in ended if status is RunStatus.COMPLETED)
    others = query(
        root,
        "SELECT run_id, status, error FROM workflow_runs WHERE status != 'completed'",
    )
    history = {
        run_id: query(
            root,
            "SELECT json_extract(payload, '$.status'), json_extract(payload, '$.reason')"
            " FROM logs WHERE type = 'workflow.status' AND ref_id = ? ORDER BY id",
            run_id,
        )
        for run_id, _, _ in others
    }
    assert completed == REQUESTS, history  # nothing drops or fails a run here
    assert max(restarts) < 15.0, ms(restarts)  # "starts in seconds": ~3 s measured
    figure(
        "daemon SIGKILLed under acknowledged trigger-workflow requests",
        f"{KILLS} kills, {REQUESTS}/{REQUESTS} acknowledged runs present and completed, "
        f"{stream.unanswered} requests cut off unanswered; integrity_check ok; "
        f"kill → serving again {ms(restarts)}; ack {ms(stream.latencies)}",
    )


def test_a_client_retrying_with_keys_through_daemon_kills_makes_no_run_twice(
    root: Path, figure: Figure
) -> None:
    assert run_nerve("start", cwd=root).code == 0
    stream = Stream(root, "quick", keyed=True, pace_s=PACE_S)
    client = threading.Thread(target=stream.run, args=(REQUESTS, time.monotonic() + 120))
    client.start()
    chance = random.Random(11)
    kills = 0
    for _ in range(KILLS):
        time.sleep(chance.uniform(0.2, 1.2))
        if not client.is_alive():
            break
        kill_daemon(root)
        kills += 1
        assert run_nerve("start", cwd=root).code == 0
    client.join()
    assert len(stream.acknowledged) == REQUESTS
    assert kills == KILLS, "the stream ended before every kill: make it longer"
    keyed = query(root, "SELECT idem_key, run_id FROM workflow_runs ORDER BY created_at")
    by_key = dict(keyed)
    assert len(keyed) == len(by_key) == REQUESTS  # one run per key, no run without one
    answered = {f"request-{n}": run_id for n, run_id in enumerate(stream.acknowledged)}
    assert by_key == answered  # each retry was answered with the run its key had made
    assert run_nerve("stop", cwd=root).code == 0
    figure(
        "a client retrying each launch with its key through daemon kills",
        f"{KILLS} kills, {REQUESTS} keys → {len(keyed)} runs, 0 duplicates; "
        f"{stream.unanswered} requests cut off and sent again, {stream.found} of them found "
        "the run their first try had committed",
    )
