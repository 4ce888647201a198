"""The CLI's client of the daemon IPC socket: one request, one response, with a timeout.

It speaks the protocol models of nerve_core. No socket, or nobody answering on it, means the
daemon is not running: `DaemonNotRunning`, which the CLI turns into exit code 3.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, TypeVar

from nerve_core.errors import DaemonNotRunning, NerveError

if TYPE_CHECKING:
    from nerve_core import OkResponse, Workspace
    from nerve_core._ipc import _Request

    R = TypeVar("R", bound=OkResponse)

DEFAULT_TIMEOUT_S = 30.0


class DaemonError(NerveError):
    """The daemon answered with an error."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def not_running(workspace: Workspace) -> DaemonNotRunning:
    return DaemonNotRunning(f"nerve is not running in {workspace.root} (start it with `nerve dev`)")


PATIENCE_S = 0.5  # waited before looking whether the daemon is stopped, then again as often


def _answer(sock: socket.socket, workspace: Workspace, timeout: float) -> bytes:
    """The answer's line. A daemon that is stopped (SIGSTOP, a debugger) or silent past
    `timeout` is not running for this command's purposes: `DaemonNotRunning`, with the reason."""
    import time

    deadline = time.monotonic() + timeout
    received = bytearray()
    while True:
        sock.settimeout(max(0.001, min(PATIENCE_S, deadline - time.monotonic())))
        try:
            chunk = sock.recv(1 << 16)
        except TimeoutError:
            pid, stopped = _daemon_state(workspace)
            if stopped:
                raise DaemonNotRunning(
                    f"nerve (pid {pid}) is stopped (SIGSTOP, a debugger or job control) and does "
                    f"not answer: `kill -CONT {pid}` resumes it"
                ) from None
            if time.monotonic() >= deadline:
                raise DaemonNotRunning(
                    f"nerve (pid {pid}) did not answer within {timeout:g}s: it may be overloaded "
                    "or hung (see logs/nerve.log)"
                ) from None
            continue
        received += chunk
        if not chunk or b"\n" in chunk:
            return bytes(received)


def _daemon_state(workspace: Workspace) -> tuple[int | None, bool]:
    """The daemon's pid (from its pid file) and whether that process is stopped."""
    import psutil

    try:
        pid = int(workspace.pid_path.read_text())
        return pid, psutil.Process(pid).status() in (psutil.STATUS_STOPPED, "tracing-stop")
    except (OSError, ValueError, psutil.Error):
        return None, False


def request(
    workspace: Workspace, message: _Request, expected: type[R], timeout: float = DEFAULT_TIMEOUT_S
) -> R:
    """Send `message` to the workspace's daemon and return its `expected` response."""
    from nerve_core import encode_message, parse_daemon_ipc_response

    path = workspace.socket_path
    if not path.exists():
        raise not_running(workspace)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            raise not_running(workspace) from None
        try:
            sock.sendall(encode_message(message))
            line = _answer(sock, workspace, timeout)
        except OSError as exc:
            raise NerveError(f"the connection to the daemon failed: {exc}") from None
    if not line:
        raise NerveError("the daemon closed the connection without an answer")
    parsed = parse_daemon_ipc_response(line, expected)
    if not parsed.ok:
        raise DaemonError(parsed.error.code, parsed.error.message)
    return parsed.value
