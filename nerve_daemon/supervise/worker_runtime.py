"""What every worker process shares: its output redirected away from the protocol, its channel
to the kernel (with a watchdog so a dead kernel leaves no orphan), and the check that what user
code returns is JSON as nerve stores it."""

from __future__ import annotations

import math
import os
import select
import signal
import socket
import sys
import threading
from typing import Any

import orjson

from nerve_core import WorkerMessage, decode_worker_message, encode_worker_message, parse_rate

MAX_PAYLOAD_BYTES = 1 << 20


class QuietSocket(socket.socket):
    """A socket whose repr makes no system call. asyncio formats the repr of a socket each time
    a task starts waiting on it (for a KeyError inside `selectors`, caught at once), and a plain
    socket's repr asks the kernel for both addresses: ~11 µs a wait, two waits a round trip."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<socket fd={self.fileno()}>"


def quiet(sock: socket.socket) -> QuietSocket:
    """The same connection as `sock` (which is left detached), as a `QuietSocket`."""
    return QuietSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())


def redirect_output(output_fd: int) -> None:
    """Point stdout and stderr at the output socket (logged by the kernel, tagged with this
    worker's name), line-buffered, before any user code runs; leave stopping to the kernel."""
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is for the kernel, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Channel:
    """The worker's end of the protocol socket. The main thread reads requests directly (no
    hand-off between threads on the hot path); a watchdog thread blocks until the kernel's end
    hangs up and then exits the process at once, even mid-compute, so a dead kernel leaves no
    orphan behind."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lines = sock.makefile("rb")
        self._send_lock = threading.Lock()
        watch_kernel(sock)

    def send(self, message: WorkerMessage) -> None:
        line = encode_worker_message(message)
        with self._send_lock:
            try:
                self._sock.sendall(line)
            except OSError:
                os._exit(0)  # the kernel is gone

    def receive(self) -> WorkerMessage:
        line = self._lines.readline()
        if not line:
            os._exit(0)  # EOF: the kernel is gone
        decoded = decode_worker_message(line)
        if not decoded.ok:
            print(f"nerve worker: {decoded.error}", file=sys.stderr, flush=True)
            os._exit(3)
        return decoded.value


def watch_kernel(sock: socket.socket) -> None:
    """Exit this process as soon as the kernel's end of `sock` hangs up (a thread of its own)."""

    def watch() -> None:
        watcher = select.poll()
        watcher.register(sock.fileno(), select.POLLRDHUP)
        while True:
            for _fd, events in watcher.poll():
                if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    os._exit(0)  # the kernel is gone: do not outlive it

    threading.Thread(target=watch, name="nerve-worker-watchdog", daemon=True).start()


def loggable(fields: dict[str, Any]) -> dict[str, Any]:
    """`ctx.log` fields as JSON can carry them: what JSON cannot hold becomes its repr (a
    field orjson refuses outright, an integer past 64 bits say, becomes its repr whole)."""
    result: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            result[key] = orjson.loads(orjson.dumps(value, default=repr))
        except orjson.JSONEncodeError:
            result[key] = repr(value)
    return result


class PayloadError(TypeError):
    pass


def check_payload(value: Any, what: str) -> None:
    """A compute's return must be JSON as nerve stores it: no NaN or infinity (orjson would turn
    them into null silently), no cycles, no other types, and at most 1 MiB."""
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:
        raise PayloadError(
            f"{what} returned a value that is not JSON-serialisable: {exc}"
        ) from None
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            f"{what} returned {len(encoded)} bytes of JSON; the limit is {MAX_PAYLOAD_BYTES}"
        )
    if b"null" in encoded and _has_non_finite(value):
        raise PayloadError(f"{what} returned NaN or infinity, which JSON cannot hold")


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(item) for item in value)
    return False


def check_limit(name: object, rate: object) -> tuple[str, int, float]:
    """`ctx.limit(name, rate)`'s arguments, checked: (name, count, period in seconds). Raises
    `ValueError` saying what is wrong."""
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise ValueError(f"a rate limit name is a string of 1 to 200 characters, got {name!r}")
    parsed = parse_rate(rate)
    if not parsed.ok:
        raise ValueError(parsed.error)
    count, period = parsed.value
    return name, count, period


class LimitError(RuntimeError):
    """The kernel refused a `ctx.limit()` request (it says why)."""


class ProgressPacer:
    """`ctx.progress()` in a tight loop must not flood the kernel: an update goes out when
    `every_s` has passed since the last one of the same compute or run, or when it says done."""

    def __init__(self, every_s: float = 0.1) -> None:
        self._every_s = every_s
        self._last: dict[str, float] = {}

    def due(self, key: str, fraction: float) -> bool:
        import time

        now = time.monotonic()
        if fraction < 1.0 and now - self._last.get(key, -math.inf) < self._every_s:
            return False
        self._last[key] = now
        return True

    def forget(self, key: str) -> None:
        self._last.pop(key, None)
