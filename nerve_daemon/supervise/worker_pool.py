"""Starting, watching and stopping worker processes: the one place child processes are made.

`WorkerPool` is an async context manager. Entering it starts the fork server (a fresh interpreter
that preloads the worker runtime); `spawn()` then asks it for a worker and returns a
`WorkerProcess`: the kernel's end of the worker's protocol socket, its pid, and its exit. The
worker's stdout and stderr arrive on a second socket and are logged line by line, tagged with the
worker's name. Leaving the pool kills what is still running and stops the fork server, which
reaps every worker it forked.

The fork server is supervised like any worker: when it dies, every spawn waiting on it fails,
every worker it forked is killed and reported exited (their supervisors respawn them), and a new
fork server starts, with the same crash-loop rule (5 deaths within 60 s: FATAL, no new worker).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import anyio
import orjson
from anyio.abc import TaskGroup, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from nerve_core import (
    MAX_LINE_BYTES,
    LogType,
    WorkerMessage,
    WorkerState,
    decode_worker_message,
    encode_worker_message,
)
from nerve_core.errors import NerveError, ProtocolError
from nerve_store import KERNEL_SOURCE, LogRow

from ..containment import contained
from .policy import CrashHistory, GroupPolicy
from .worker_runtime import quiet

log = logging.getLogger("nerve")

FORK_SERVER: Final = "fork-server"  # how the fork server is named in rows and `health`
FORK_SERVER_START_TIMEOUT_S = 30.0
OUTPUT_LINE_LIMIT = 64 * 1024


class WorkerStartError(NerveError):
    pass


class WorkerExited(NerveError):
    """The worker's protocol socket closed: the worker is gone."""


class WorkerProcess:
    """A running worker, seen from the kernel."""

    def __init__(self, name: str, pid: int, stream: UNIXSocketStream) -> None:
        self.name = name
        self.pid = pid
        self.exit_code: int | None = None
        self.cgroup_error: str | None = None  # why it is not in its group's memory cgroup
        self._exited = anyio.Event()
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._receiving = False
        # Several tasks may send to a workflow worker; uncontended, the lock costs no loop hop.
        self._send_lock = anyio.Lock(fast_acquire=True)

    async def send(self, message: WorkerMessage) -> None:
        try:
            async with self._send_lock:
                await self._stream.send(encode_worker_message(message))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise WorkerExited(f"worker {self.name} is gone") from exc

    async def receive(self) -> WorkerMessage:
        """The next message; `WorkerExited` at end of stream, `ProtocolError` for garbage."""
        self._receiving = True
        try:
            line = await self._reader.receive_until(b"\n", MAX_LINE_BYTES * 16)
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
        ) as exc:
            await self.aclose()
            raise WorkerExited(f"worker {self.name} is gone") from exc
        except anyio.DelimiterNotFound as exc:
            raise ProtocolError(f"worker {self.name} sent an over-long line") from exc
        finally:
            self._receiving = False
        decoded = decode_worker_message(line)
        if not decoded.ok:
            raise ProtocolError(f"worker {self.name}: {decoded.error}")
        return decoded.value

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.exit_code is not None
        return self.exit_code

    @property
    def alive(self) -> bool:
        return self.exit_code is None

    def _set_exited(self, code: int) -> None:
        self.exit_code = code
        self._exited.set()

    async def aclose(self) -> None:
        await self._stream.aclose()

    @property
    def receiving(self) -> bool:
        """Whether a receive is waiting on the stream right now."""
        return self._receiving

    async def close_unless_read(self) -> None:
        """Close the stream of an exited worker, unless a receive is pending: closing under a
        pending receive can leave a stale reader on a file descriptor the next socket reuses.
        The pending receive sees the end of the stream (the worker's end is gone) and closes
        it itself."""
        if not self._receiving:
            await self.aclose()


class WorkerPool:
    """Workers forked by a supervised fork server; see the module docstring."""

    def __init__(
        self,
        on_output: Callable[[str, str], None] | None = None,
        policy: GroupPolicy | None = None,
        record: Callable[[LogRow], None] | None = None,
    ) -> None:
        self._on_output = on_output or (lambda name, line: log.info("[%s] %s", name, line))
        self._record = record
        self._server: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._requests = itertools.count(1)
        self._spawns: dict[int, tuple[anyio.Event, dict[str, Any]]] = {}
        self._workers: dict[int, WorkerProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._group: TaskGroup | None = None
        self._crashes = CrashHistory(policy or GroupPolicy())
        self._serving = anyio.Event()  # set while a fork server serves spawns
        self.state = WorkerState.STOPPED
        self.restarts = 0

    @property
    def server_pid(self) -> int | None:
        return None if self._server is None or not self._serving.is_set() else self._server.pid

    async def __aenter__(self) -> WorkerPool:
        await self._start_server()
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._supervise_server)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for worker in list(self._workers.values()):
            worker.kill()
        with anyio.move_on_after(5, shield=True):
            for worker in list(self._workers.values()):
                await worker.wait()
        assert self._group is not None
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)
        with anyio.CancelScope(shield=True):
            await self._stop_server()

    async def spawn(
        self, kind: str, name: str, args: dict[str, Any], cgroup: Path | None = None
    ) -> WorkerProcess:
        """Fork a worker of `kind` ("sense") named `name` for logs; return once it has a pid
        (and has joined the memory cgroup whose `cgroup.procs` is `cgroup`, when it could: the
        worker's `cgroup_error` says why not). While the fork server is being replaced this
        waits for the new one; a fork server in a crash loop, or one that dies under the
        request, is a `WorkerStartError`."""
        assert self._group is not None
        if self.state is WorkerState.FATAL:
            raise WorkerStartError(
                f"cannot start worker {name}: the fork server is in a crash loop"
            )
        with anyio.move_on_after(FORK_SERVER_START_TIMEOUT_S):
            await self._serving.wait()
        control = self._control
        if not self._serving.is_set() or control is None:
            raise WorkerStartError(f"cannot start worker {name}: no fork server is running")
        proto_kernel, proto_worker = socket.socketpair()
        out_kernel, out_worker = socket.socketpair()
        request_id = next(self._requests)
        done = anyio.Event()
        self._spawns[request_id] = (done, {})
        try:
            request: dict[str, Any] = {"spawn": request_id, "kind": kind, "args": args}
            if cgroup is not None:
                request["cgroup"] = str(cgroup)
            message = orjson.dumps(request)
            await self._send_control(control, message, [proto_worker.fileno(), out_worker.fileno()])
            with anyio.fail_after(FORK_SERVER_START_TIMEOUT_S):
                await done.wait()
        except (OSError, TimeoutError) as exc:
            self._spawns.pop(request_id, None)
            proto_kernel.close()
            out_kernel.close()
            raise WorkerStartError(f"cannot start worker {name}: {exc}") from None
        finally:
            proto_worker.close()
            out_worker.close()
        reply = self._spawns.pop(request_id)[1]
        if "pid" not in reply:
            proto_kernel.close()
            out_kernel.close()
            raise WorkerStartError(f"cannot start worker {name}: {reply.get('error')}")
        pid = int(reply["pid"])
        worker = WorkerProcess(name, pid, await UNIXSocketStream.from_socket(quiet(proto_kernel)))
        worker.cgroup_error = reply.get("cgroupError")
        if worker.cgroup_error is not None:
            log.warning("%s did not join its memory cgroup: %s", name, worker.cgroup_error)
        self._workers[pid] = worker
        if pid in self._early_exits:
            worker._set_exited(self._early_exits.pop(pid))
        output = await UNIXSocketStream.from_socket(quiet(out_kernel))
        self._group.start_soon(self._pump_output, worker, output)
        return worker

    async def _pump_output(self, worker: WorkerProcess, output: UNIXSocketStream) -> None:
        reader = BufferedByteReceiveStream(output)
        async with output:
            while True:
                try:
                    line = await reader.receive_until(b"\n", OUTPUT_LINE_LIMIT)
                except anyio.DelimiterNotFound:
                    line = await reader.receive(OUTPUT_LINE_LIMIT)
                except (
                    anyio.EndOfStream,
                    anyio.IncompleteRead,
                    anyio.BrokenResourceError,
                    OSError,
                ):
                    return
                self._on_output(worker.name, line.decode("utf-8", "replace").rstrip())

    # -- the fork server, supervised ---------------------------------------------------------

    async def _start_server(self) -> None:
        kernel_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.state = WorkerState.STARTING
        self._server = subprocess.Popen(
            [sys.executable, "-m", "nerve_daemon.supervise.fork_server", str(server_end.fileno())],
            pass_fds=[server_end.fileno()],
            stdin=subprocess.DEVNULL,
        )
        server_end.close()
        kernel_end.setblocking(False)
        self._control = kernel_end
        try:
            with anyio.fail_after(FORK_SERVER_START_TIMEOUT_S):
                hello = await self._receive_control(kernel_end)
        except (TimeoutError, WorkerStartError):
            await self._stop_server()
            raise WorkerStartError("the fork server did not start") from None
        log.debug("fork server ready: pid %s", hello["ready"])
        self.state = WorkerState.RUNNING
        self._serving.set()

    async def _supervise_server(self) -> None:
        """Serve the fork server's messages; when it dies, every worker it forked is lost (no
        exit of theirs can be reported any more): they are killed and reported exited, so their
        supervisors respawn them on a new fork server, started with the crash-loop rule."""
        while True:
            assert self._control is not None
            await self._read_control(self._control)
            await self._lost_server()
            while True:
                delay = self._crashes.record(anyio.current_time())
                if delay is None:
                    self.state = WorkerState.FATAL
                    log.error("the fork server keeps dying; no new worker can start")
                    self._report(LogType.WORKER_CRASH_LOOP, {"worker": FORK_SERVER})
                    return
                self.state = WorkerState.BACKOFF
                await anyio.sleep(delay)
                self.restarts += 1
                try:
                    await self._start_server()
                except WorkerStartError as exc:
                    log.error("%s", exc)
                    continue
                assert self._server is not None
                self._report(LogType.WORKER_START, {"worker": FORK_SERVER, "pid": self._server.pid})
                break

    async def _lost_server(self) -> None:
        self._serving = anyio.Event()
        self.state = WorkerState.STARTING
        code = await self._stop_server()
        pid = None if self._server is None else self._server.pid
        lost = list(self._workers.values())
        log.error(
            "the fork server (pid %s) exited with code %s; replacing it and its %d workers",
            pid,
            code,
            len(lost),
        )
        self._report(
            LogType.WORKER_EXIT,
            {"worker": FORK_SERVER, "pid": pid, "code": code, "reason": "crash", "lost": len(lost)},
        )
        for done, reply in self._spawns.values():
            reply["error"] = "the fork server exited"
            done.set()
        self._workers.clear()
        for worker in lost:
            worker.kill()  # an orphan now: nobody would reap or report it
            worker._set_exited(-signal.SIGKILL)
            await worker.close_unless_read()

    def _report(self, type_: LogType, payload: dict[str, Any]) -> None:
        if self._record is not None:
            with contained("recording a fork server event"):
                self._record(LogRow(KERNEL_SOURCE, type_, payload))

    async def _read_control(self, control: socket.socket) -> None:
        """Handle the fork server's messages until its connection ends."""
        while True:
            try:
                message = await self._receive_control(control)
            except WorkerStartError:
                return
            if "spawned" in message:
                pending = self._spawns.get(int(message["spawned"]))
                if pending is not None:
                    pending[1].update(message)
                    pending[0].set()
            elif "exited" in message:
                pid, code = int(message["exited"]), int(message["code"])
                worker = self._workers.pop(pid, None)
                if worker is None:
                    self._early_exits[pid] = code  # exited before spawn() registered it
                else:
                    worker._set_exited(code)
                    await worker.close_unless_read()

    async def _receive_control(self, control: socket.socket) -> dict[str, Any]:
        while True:
            try:
                data = control.recv(65536)
            except BlockingIOError:
                await anyio.wait_readable(control)
                continue
            except OSError as exc:
                raise WorkerStartError(f"fork server connection failed: {exc}") from None
            if not data:
                raise WorkerStartError("the fork server closed its connection")
            result: dict[str, Any] = orjson.loads(data)
            return result

    async def _send_control(self, control: socket.socket, message: bytes, fds: list[int]) -> None:
        while True:
            try:
                socket.send_fds(control, [message], fds)
                return
            except BlockingIOError:
                await anyio.wait_writable(control)

    async def _stop_server(self) -> int | None:
        """Close the control socket (a live server exits on it) and reap the server, off the
        loop; its exit code."""
        if self._control is not None:
            self._control.close()
            self._control = None
        server = self._server
        if server is None:
            return None

        def reap() -> int:
            try:
                return server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
                return server.wait()

        return await anyio.to_thread.run_sync(reap)
