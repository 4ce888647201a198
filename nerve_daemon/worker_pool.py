"""Starting, watching and stopping worker processes: the one place child processes are made.

`WorkerPool` is an async context manager. Entering it starts the fork server (a fresh interpreter
that preloads the worker runtime); `spawn()` then asks it for a worker and returns a
`WorkerProcess`: the kernel's end of the worker's protocol socket, its pid, and its exit. The
worker's stdout and stderr arrive on a second socket and are logged line by line, tagged with the
worker's name. Leaving the pool kills what is still running and stops the fork server, which
reaps every worker it forked.
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
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from nerve_core import MAX_LINE_BYTES, WorkerMessage, decode_worker_message, encode_worker_message
from nerve_core.errors import NerveError, ProtocolError

from .worker_runtime import quiet

log = logging.getLogger("nerve")

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
    def __init__(self, on_output: Callable[[str, str], None] | None = None) -> None:
        self._on_output = on_output or (lambda name, line: log.info("[%s] %s", name, line))
        self._server: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._requests = itertools.count(1)
        self._spawns: dict[int, tuple[anyio.Event, dict[str, Any]]] = {}
        self._workers: dict[int, WorkerProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> WorkerPool:
        kernel_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._server = subprocess.Popen(
            [sys.executable, "-m", "nerve_daemon.fork_server", str(server_end.fileno())],
            pass_fds=[server_end.fileno()],
            stdin=subprocess.DEVNULL,
        )
        server_end.close()
        kernel_end.setblocking(False)
        self._control = kernel_end
        try:
            with anyio.fail_after(FORK_SERVER_START_TIMEOUT_S):
                hello = await self._receive_control()
        except (TimeoutError, WorkerStartError):
            self._stop_server()
            raise WorkerStartError("the fork server did not start") from None
        log.debug("fork server ready: pid %s", hello["ready"])
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._read_control)
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
        self._stop_server()

    async def spawn(self, kind: str, name: str, args: dict[str, Any]) -> WorkerProcess:
        """Fork a worker of `kind` ("sense") named `name` for logs; return once it has a pid."""
        assert self._control is not None
        assert self._group is not None
        proto_kernel, proto_worker = socket.socketpair()
        out_kernel, out_worker = socket.socketpair()
        request_id = next(self._requests)
        done = anyio.Event()
        self._spawns[request_id] = (done, {})
        try:
            message = orjson.dumps({"spawn": request_id, "kind": kind, "args": args})
            await self._send_control(message, [proto_worker.fileno(), out_worker.fileno()])
        finally:
            proto_worker.close()
            out_worker.close()
        with anyio.fail_after(FORK_SERVER_START_TIMEOUT_S):
            await done.wait()
        reply = self._spawns.pop(request_id)[1]
        if "pid" not in reply:
            proto_kernel.close()
            out_kernel.close()
            raise WorkerStartError(f"cannot start worker {name}: {reply.get('error')}")
        pid = int(reply["pid"])
        worker = WorkerProcess(name, pid, await UNIXSocketStream.from_socket(quiet(proto_kernel)))
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

    async def _read_control(self) -> None:
        while True:
            try:
                message = await self._receive_control()
            except WorkerStartError:
                log.error("the fork server exited; no new worker can start")
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

    async def _receive_control(self) -> dict[str, Any]:
        assert self._control is not None
        while True:
            try:
                data = self._control.recv(65536)
            except BlockingIOError:
                await anyio.wait_readable(self._control)
                continue
            except OSError as exc:
                raise WorkerStartError(f"fork server connection failed: {exc}") from None
            if not data:
                raise WorkerStartError("the fork server closed its connection")
            result: dict[str, Any] = orjson.loads(data)
            return result

    async def _send_control(self, message: bytes, fds: list[int]) -> None:
        assert self._control is not None
        while True:
            try:
                socket.send_fds(self._control, [message], fds)
                return
            except BlockingIOError:
                await anyio.wait_writable(self._control)

    def _stop_server(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._server is not None:
            try:
                self._server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server = None
