"""The sense worker: the process of one sense group, forked from the fork server.

It points its stdout and stderr at its output socket first (so nothing a sense prints can touch
the protocol), loads each sense of the group (its `compute.py` and its database with migrations
applied; a sense that fails to load is that sense's error, not the group's death), sends
`WorkerReady`, then runs one compute at a time as the kernel asks. A reader thread watches the
protocol socket: when the kernel's end closes, the worker exits at once, even mid-compute, so a
dead kernel leaves no orphan behind.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from nerve_core import (
    ComputeRequest,
    ComputeResult,
    LimitGrant,
    LimitRequest,
    Progress,
    SenseLog,
    ShutdownRequest,
    Signal,
    TriggerKind,
    WorkerReady,
    Workspace,
    check_progress,
    require_name,
)
from nerve_core.errors import NerveError
from nerve_store import BlobStore, LogStore, open_sense_db, open_sense_db_readonly

from ..supervise.user_modules import load_sense_compute
from ..supervise.worker_runtime import (
    Channel,
    LimitError,
    ProgressPacer,
    check_limit,
    check_payload,
    loggable,
    redirect_output,
)


class SenseContext:
    """The `ctx` a compute receives (DESIGN.md, "Sense contract")."""

    def __init__(
        self, runtime: SenseRuntime, name: str, trigger: TriggerKind, signal: Signal | None
    ) -> None:
        self.name = name
        self.trigger = trigger
        self.signal = signal
        self._runtime = runtime

    @property
    def db(self) -> Engine:
        """This sense's own database, read-write, migrations applied."""
        return self._runtime.engines[self.name]

    @property
    def blobs(self) -> BlobStore:
        return self._runtime.blobs

    @property
    def logs(self) -> LogStore:
        """Read-only queries on logs.db."""
        return self._runtime.logs()

    def peer(self, name: str) -> Engine:
        """Another sense's database, read-only."""
        return self._runtime.peer(name)

    def log(self, level: str, message: str, **fields: Any) -> None:
        """A row in logs.db (type `sense.log`) with this sense as its source."""
        safe = loggable(fields)
        self._runtime.channel.send(SenseLog(self.name, str(level), str(message), safe))

    def progress(self, fraction: float, note: str = "") -> None:
        """How far this compute has come, from 0 to 1, with a short note: shown by `nerve sense
        list` and `nerve explain sense` while it runs. Frequent calls are cheap: at most ten
        updates a second reach the kernel."""
        value, text = check_progress(fraction, note)
        if self._runtime.pacer.due(self.name, value):
            self._runtime.channel.send(Progress(self.name, value, text))

    def limit(self, name: str, rate: str) -> None:
        """Wait until a call under `name` keeps within `rate` (`"30/m"`, `"10/2s"`), counted
        across every sense and role of this daemon: at most that many calls go in any window of
        that length. Call it just before each outside call; the wait counts toward the compute's
        timeout."""
        time.sleep(max(0.0, self._runtime.reserve(name, rate, self.name) - time.monotonic()))

    async def limit_async(self, name: str, rate: str) -> None:
        """`limit()` for an `async def` compute: the same count, waited for with `await`."""
        at = self._runtime.reserve(name, rate, self.name)
        await asyncio.sleep(max(0.0, at - time.monotonic()))


class SenseRuntime:
    def __init__(self, workspace: Workspace, channel: Channel) -> None:
        self.workspace = workspace
        self.channel = channel
        self.pacer = ProgressPacer()
        self.blobs = BlobStore(workspace.blobs_dir)
        self.computes: dict[str, Callable[..., Any]] = {}
        self.engines: dict[str, Engine] = {}
        self.errors: dict[str, str] = {}
        self._peers: dict[str, Engine] = {}
        self._logs: LogStore | None = None
        self._loop: asyncio.Runner | None = None
        self._limit_ids = 0
        self._limit_lock = threading.Lock()  # a compute's threads may each call ctx.limit
        self._early: collections.deque[Any] = collections.deque()  # read while awaiting a grant

    def load(self, senses: list[str]) -> None:
        for name in senses:
            try:
                self.computes[name] = load_sense_compute(self.workspace, name)
                self.engines[name] = open_sense_db(self.workspace, name)
            except NerveError as exc:
                self.errors[name] = str(exc)

    def peer(self, name: str) -> Engine:
        require_name(name, "sense name")
        if name not in self._peers:
            self._peers[name] = open_sense_db_readonly(self.workspace, name)
        return self._peers[name]

    def logs(self) -> LogStore:
        if self._logs is None:
            self._logs = LogStore.open_readonly(self.workspace.logs_db)
        return self._logs

    def next_message(self) -> Any:
        """The kernel's next message, those read while awaiting a grant first."""
        return self._early.popleft() if self._early else self.channel.receive()

    def reserve(self, name: str, rate: str, of: str) -> float:
        """Ask the kernel for the instant a call under `name` may go (time.monotonic())."""
        checked, count, period = check_limit(name, rate)
        with self._limit_lock:
            self._limit_ids += 1
            self.channel.send(LimitRequest(self._limit_ids, checked, count, period, of))
            while True:  # the kernel sends computes ahead: keep them for after this one
                message = self.channel.receive()
                if isinstance(message, LimitGrant) and message.id == self._limit_ids:
                    if message.error is not None:
                        raise LimitError(message.error)
                    return message.at
                self._early.append(message)

    def compute(self, request: ComputeRequest) -> ComputeResult:
        started = time.monotonic()
        error = self.errors.get(request.sense)
        function = self.computes.get(request.sense)
        if error is not None or function is None:
            return ComputeResult(
                request.id,
                request.sense,
                False,
                error=error or f"sense {request.sense!r} is not in this group",
                started_mono=started,
            )
        ctx = SenseContext(self, request.sense, request.trigger, request.signal)
        try:
            value = function(ctx)
            if inspect.isawaitable(value):
                value = self._run_async(value)
            check_payload(value, "compute")
        except (Exception, SystemExit) as exc:
            return ComputeResult(
                request.id,
                request.sense,
                False,
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
                started_mono=started,
                duration_ms=(time.monotonic() - started) * 1000,
            )
        return ComputeResult(
            request.id,
            request.sense,
            True,
            value=value,
            started_mono=started,
            duration_ms=(time.monotonic() - started) * 1000,
        )

    def _run_async(self, awaitable: Awaitable[Any]) -> Any:
        if self._loop is None:
            self._loop = asyncio.Runner()

        async def wait() -> Any:
            return await awaitable

        return self._loop.run(wait())

    def close(self) -> None:
        for engine in (*self.engines.values(), *self._peers.values()):
            engine.dispose()
        if self._logs is not None:
            self._logs.close()
        if self._loop is not None:
            self._loop.close()


def main(args: dict[str, Any], proto_fd: int, output_fd: int) -> int:
    """Entry point in the forked child: `args` holds `root`, `group` and `senses`."""
    redirect_output(output_fd)
    channel = Channel(socket.socket(fileno=proto_fd))
    runtime = SenseRuntime(Workspace(Path(args["root"])), channel)
    runtime.load(list(args["senses"]))
    channel.send(WorkerReady(os.getpid(), runtime.errors))
    while True:
        match runtime.next_message():
            case ComputeRequest() as request:
                channel.send(runtime.compute(request))
            case ShutdownRequest():
                break
            case other:
                print(f"nerve worker: unexpected message {other!r}", file=sys.stderr, flush=True)
                return 3
    runtime.close()
    return 0
