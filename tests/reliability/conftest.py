"""The reliability suite: each test states what it tried and what held, as figures printed in
the summary at the end of the run (see `tests/conftest.py`) and stated in RELIABILITY.md."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from ..cli.conftest import run_nerve
from ..conftest import FIGURE
from ..daemon.conftest import build_workspace, ws  # noqa: F401  (the workspace fixture, shared)

ECHO = (Path(__file__).parent / "echo_workflow.py").read_text()
HOLD = (Path(__file__).parent / "hold_workflow.py").read_text()  # holds until `go` is written
RETURN_ONE = "def compute(ctx):\n    return 1\n"

Figure = Callable[[str, str], None]


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """Record one figure of this test: what was measured or tried, and what held."""

    def record(what: str, value: str) -> None:
        request.node.user_properties.append((FIGURE, {"what": what, "value": value}))

    return record


def ms(seconds: Sequence[float]) -> str:
    """Median and p99 (the largest of fewer than 100) of `seconds`, in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


@contextmanager
def daemon_workspace(
    config: str, senses: dict[str, str], workflows: dict[str, str] | None = None
) -> Iterator[Path]:
    """A workspace under a short path (a socket path is limited to 107 bytes); whatever daemon
    runs in it is killed at the end, and the workspace removed."""
    folder = Path(tempfile.mkdtemp(prefix="nv-", dir="/tmp"))
    try:
        yield build_workspace(folder / "ws", config, senses, workflows=workflows)
    finally:
        kill_daemon(folder / "ws")
        shutil.rmtree(folder)


def kill_daemon(root: Path) -> None:
    """SIGKILL the workspace's daemon, if any, and wait until it and its workers are gone."""
    try:
        daemon = psutil.Process(int((root / "nerve.pid").read_text()))
        family = [daemon, *daemon.children(recursive=True)]
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
        return
    daemon.kill()
    psutil.wait_procs(family, timeout=20)


def wait_for(predicate: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s")


def query(root: Path, sql: str, *params: object) -> list[Any]:
    """Rows of `sql` on the workspace's logs.db, read-only, as a user would read them."""
    with (
        contextlib.closing(
            sqlite3.connect(f"file:{root / 'data/logs.db'}?mode=ro", uri=True)
        ) as db,
        db,
    ):
        return db.execute(sql, params).fetchall()


@pytest.fixture
def daemon() -> Iterator[Path]:
    """A started daemon (`nerve start`) with a sense `tick` and a workflow `echo` (5 at once)."""
    config = "senses:\n  tick: {}\nworkflows:\n  echo: {concurrency: 5}\n"
    with daemon_workspace(config, {"tick": RETURN_ONE}, {"echo": ECHO}) as root:
        assert run_nerve("start", cwd=root).code == 0
        yield root


def ask(root: Path, line: bytes) -> dict[str, Any]:
    """One request line on the workspace's socket, as a client sends it; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(root / "nerve.sock"))
        sock.sendall(line + b"\n")
        with sock.makefile("rb") as answers:
            answer: dict[str, Any] = json.loads(answers.readline())
            return answer


class Stream:
    """Sends `trigger-workflow` requests one after another, reconnecting while the daemon is
    down; keeps the id of every run the daemon acknowledged."""

    def __init__(
        self, root: Path, workflow: str, *, keyed: bool = False, pace_s: float = 0.0
    ) -> None:
        self.path = str(root / "nerve.sock")
        self.workflow = workflow
        self.stopped = threading.Event()  # set: the stream ends at its next request
        self.acked_at: list[float] = []  # monotonic instant of each acknowledgement
        self.pace_s = pace_s  # a pause after each answer
        self.keyed = keyed  # each request has a key, and is sent again until it is answered
        self.acknowledged: list[str] = []
        self.unanswered = 0  # requests sent when the daemon died: not acknowledged
        self.found = 0  # keyed requests answered with the run an earlier try had made
        self.latencies: list[float] = []

    def run(self, count: int, deadline: float) -> None:
        sock: socket.socket | None = None
        lines = None
        waiting = False  # a request was sent and its answer has not come
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            if self.stopped.is_set():
                break
            try:
                if sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(10)
                    sock.connect(self.path)
                    lines = sock.makefile("rb")
                assert lines is not None
                request = {"type": "trigger-workflow", "workflow": self.workflow, "prompt": "hi"}
                if self.keyed:
                    request["key"] = f"request-{len(self.acknowledged)}"
                sent = time.monotonic()
                sock.sendall(json.dumps(request).encode() + b"\n")
                waiting = True
                line = lines.readline()
                if not line:
                    raise ConnectionResetError("closed")
                answer = json.loads(line)
                assert answer["ok"], answer
                waiting = False
                self.acknowledged.append(answer["runId"])
                self.found += answer["existing"]
                self.acked_at.append(time.monotonic())
                self.latencies.append(self.acked_at[-1] - sent)
                time.sleep(self.pace_s)
            except OSError:
                self.unanswered += waiting
                if sock is not None:
                    sock.close()
                sock, lines, waiting = None, None, False
                time.sleep(0.02)
        if sock is not None:
            sock.close()
