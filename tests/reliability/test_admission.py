"""Concurrency holds under simultaneous triggers: many socket clients at once never get more
than `concurrency` runs started, in either overflow mode."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from ..cli.conftest import run_nerve
from ..daemon.conftest import SLEEPER
from .conftest import Figure, daemon_workspace, query, wait_for

pytestmark = pytest.mark.slow

CLIENTS = 24


def trigger_all_at_once(root: Path, prompt: str) -> list[dict[str, object]]:
    """`CLIENTS` connections, each sending one trigger-workflow in the same instant."""
    socks = []
    for _ in range(CLIENTS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(str(root / "nerve.sock"))
        socks.append(sock)
    line = json.dumps({"type": "trigger-workflow", "workflow": "sleeper", "prompt": prompt})
    answers: list[dict[str, object]] = []
    go = threading.Barrier(CLIENTS)

    def send(sock: socket.socket) -> None:
        go.wait()
        sock.sendall(line.encode() + b"\n")
        with sock.makefile("rb") as reader:
            answers.append(json.loads(reader.readline()))
        sock.close()

    threads = [threading.Thread(target=send, args=(sock,)) for sock in socks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def most_started_at_once(root: Path) -> int:
    """From the committed status rows, in commit order: the most runs `started` at one time."""
    rows = query(
        root,
        "SELECT ref_id, json_extract(payload, '$.status') FROM logs"
        " WHERE type = 'workflow.status' ORDER BY id",
    )
    running: set[str] = set()
    most = 0
    for run_id, status in rows:
        if status == "started":
            running.add(run_id)
        else:
            running.discard(run_id)
        most = max(most, len(running))
    return most


@pytest.mark.parametrize("overflow", ["drop", "queue"])
def test_simultaneous_triggers_from_many_clients_never_run_more_than_concurrency(
    overflow: str, figure: Figure
) -> None:
    config = (
        "senses:\n  tick: {}\n"
        f"workflows:\n  sleeper: {{concurrency: 2, overflow: {overflow}, max_queue: 100}}\n"
    )
    senses = {"tick": "def compute(ctx):\n    return None\n"}
    with daemon_workspace(config, senses, {"sleeper": SLEEPER}) as root:
        assert run_nerve("start", cwd=root).code == 0
        answers = trigger_all_at_once(root, "0.5")
        assert len(answers) == CLIENTS
        assert all(answer["ok"] for answer in answers), answers
        statuses = [answer["status"] for answer in answers]
        assert statuses.count("started") == 2, statuses
        if overflow == "drop":
            assert statuses.count("dropped") == CLIENTS - 2
        else:
            assert statuses.count("queued") == CLIENTS - 2
        finished = 2 if overflow == "drop" else CLIENTS
        wait_for(
            lambda: (
                query(root, "SELECT count(*) FROM workflow_runs WHERE status = 'completed'")
                == [(finished,)]
            ),
            timeout=90,
        )
        assert most_started_at_once(root) == 2
    figure(
        f"{CLIENTS} simultaneous triggers, concurrency 2, overflow {overflow}",
        f"2 started at once at most; {finished} completed"
        + (f", {CLIENTS - 2} dropped" if overflow == "drop" else ", the rest queued in turn"),
    )
