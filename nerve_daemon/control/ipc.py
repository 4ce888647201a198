"""The daemon's IPC server: `nerve.sock` in the workspace, one JSON object a line each way.

The socket is created under a restrictive umask, so it is mode 0600 from the moment it exists,
and a connection from another user (SO_PEERCRED) is refused. Each connection is its own task: a
slow or silent client blocks nobody. A malformed line gets an error response and the connection
goes on; a line over 1 MiB is refused without being read into memory, and that connection is
closed (there is no telling where the next line would start). Requests are parsed with
`parse_daemon_ipc_request` from nerve_core, the same models the CLI's client uses.

The caller must hold the workspace lock: any socket file already at the path is then stale (left
by a killed daemon) and is replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from anyio.abc import SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from nerve_core import (
    MAX_LINE_BYTES,
    CancelTimerRequest,
    CancelWorkflowRequest,
    CancelWorkflowResponse,
    ErrorResponse,
    ExplainRequest,
    ExplainResponse,
    HealthRequest,
    HealthResponse,
    IpcError,
    IpcErrorCode,
    ListSensesRequest,
    ListSensesResponse,
    ListTimersRequest,
    ListTimersResponse,
    NerveConfig,
    OkResponse,
    ReloadPlanRequest,
    ReloadRequest,
    ReloadResponse,
    RunStatus,
    SenseInfo,
    TimerInfo,
    TimerResponse,
    TriggerSenseRequest,
    TriggerWorkflowRequest,
    TriggerWorkflowResponse,
    encode_message,
    error_response,
    parse_daemon_ipc_request,
)
from nerve_core.errors import NerveError, NotFound, StoreUnavailable

from ..timing.delayed import TooManyTimers, UnknownTimer
from ..workflows.runs import UnknownRun, UnknownWorkflow

if TYPE_CHECKING:
    from nerve_core import DaemonRequest

    from .delayed_triggers import DelayedTriggers


class DaemonApi(Protocol):
    """What the socket serves: the kernel provides it (the server never imports the kernel)."""

    @property
    def config(self) -> NerveConfig: ...

    def health(self) -> HealthResponse: ...

    def list_senses(self) -> list[SenseInfo]: ...

    def trigger_sense(self, name: str, key: str | None = None) -> object: ...

    async def trigger_workflow(
        self, name: str, prompt: str = "", max_rounds: int | None = None, payload: Any = None
    ) -> tuple[str, RunStatus]: ...

    async def trigger_workflow_once(
        self,
        name: str,
        key: str,
        prompt: str = "",
        max_rounds: int | None = None,
        payload: Any = None,
    ) -> tuple[str, RunStatus, bool]: ...

    async def cancel_workflow(self, run_id: str) -> RunStatus: ...

    async def explain(
        self, what: str, name: str, *, why_not: bool = False, since: int | None = None
    ) -> dict[str, Any]: ...

    def reload_plan(self) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]: ...

    async def delay(
        self, kind: str, name: str, at_ms: int, run: tuple[str, int | None, Any] = ...
    ) -> TimerInfo: ...

    async def cancel_timer(self, timer_id: str) -> TimerInfo: ...

    @property
    def delayed(self) -> DelayedTriggers: ...


log = logging.getLogger("nerve")

MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, the last a NUL
MAX_CONNECTIONS = 512


class SocketPathTooLong(NerveError):
    pass


class DaemonIpcServer:
    def __init__(self, kernel: DaemonApi, path: Path) -> None:
        self._kernel = kernel
        self._path = path
        self._connections = anyio.Semaphore(MAX_CONNECTIONS)
        self.served = 0

    @property
    def open_connections(self) -> int:
        """Clients being served now (at most `MAX_CONNECTIONS`; beyond, one is refused)."""
        return MAX_CONNECTIONS - self._connections.value

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        check_socket_path(self._path)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # stale: we hold the workspace lock
        previous = os.umask(0o177)
        try:
            listener = await anyio.create_unix_listener(self._path)
        finally:
            os.umask(previous)
        try:
            async with listener, anyio.create_task_group() as group:
                task_status.started()
                while True:
                    stream = await listener.accept()
                    group.start_soon(self._serve, stream)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()

    async def _serve(self, stream: SocketStream) -> None:
        async with stream:
            if not _same_user(stream):
                return
            if self._connections.value == 0:
                await _send(
                    stream,
                    error_response(IpcError(IpcErrorCode.UNAVAILABLE, "too many connections")),
                )
                return
            async with self._connections:
                reader = BufferedByteReceiveStream(stream)
                while True:
                    try:
                        line = await reader.receive_until(b"\n", MAX_LINE_BYTES)
                    except anyio.DelimiterNotFound:
                        message = f"a request line is limited to {MAX_LINE_BYTES} bytes"
                        await _send(
                            stream, error_response(IpcError(IpcErrorCode.TOO_LARGE, message))
                        )
                        return
                    except (
                        anyio.EndOfStream,
                        anyio.IncompleteRead,
                        anyio.BrokenResourceError,
                        OSError,
                    ):
                        return
                    self.served += 1
                    response = await self._respond(line)
                    if not await _send(stream, response):
                        return

    async def _respond(self, line: bytes) -> OkResponse | ErrorResponse:
        """The answer to one line; an error nobody expected is answered `internal` and
        logged, and the connection and the daemon go on."""
        parsed = parse_daemon_ipc_request(line)
        if not parsed.ok:
            return error_response(parsed.error)
        try:
            return await self._answer(parsed.value)
        except Exception as exc:
            log.exception("the %s request failed unexpectedly", parsed.value.type)
            message = f"the request failed: {type(exc).__name__}: {exc}"
            return _error(parsed.value, IpcErrorCode.INTERNAL, message[:1000])

    async def _answer(self, request: DaemonRequest) -> OkResponse | ErrorResponse:
        kernel = self._kernel
        try:
            match request:
                case HealthRequest():
                    return kernel.health().model_copy(update={"id": request.id})
                case ListSensesRequest():
                    return ListSensesResponse(id=request.id, senses=kernel.list_senses())
                case TriggerSenseRequest(sense=sense):
                    if sense not in kernel.config.senses:
                        return _error(
                            request, IpcErrorCode.UNKNOWN_SENSE, f'no sense "{sense}" in nerve.yaml'
                        )
                    if request.at is not None:
                        timer = await kernel.delay("sense", sense, request.at)
                        return TimerResponse(id=request.id, timer=timer)
                    kernel.trigger_sense(sense, request.key)
                    return OkResponse(id=request.id)
                case TriggerWorkflowRequest(at=int(at)):
                    run = (request.prompt, request.max_rounds, request.payload)
                    timer = await kernel.delay("workflow", request.workflow, at, run)
                    return TimerResponse(id=request.id, timer=timer)
                case TriggerWorkflowRequest(key=str(key)):
                    run_id, status, existing = await kernel.trigger_workflow_once(
                        request.workflow, key, request.prompt, request.max_rounds, request.payload
                    )
                    return TriggerWorkflowResponse(
                        id=request.id, run_id=run_id, status=status, existing=existing
                    )
                case TriggerWorkflowRequest():
                    run_id, status = await kernel.trigger_workflow(
                        request.workflow, request.prompt, request.max_rounds, request.payload
                    )
                    return TriggerWorkflowResponse(id=request.id, run_id=run_id, status=status)
                case CancelWorkflowRequest(run_id=run_id):
                    status = await kernel.cancel_workflow(run_id)
                    return CancelWorkflowResponse(id=request.id, status=status)
                case ExplainRequest():
                    try:
                        explanation = await kernel.explain(
                            request.what,
                            request.name,
                            why_not=request.why_not,
                            since=request.since,
                        )
                    except NotFound as exc:
                        return _error(request, _NOT_FOUND[request.what], str(exc))
                    return ExplainResponse(id=request.id, explanation=explanation)
                case ReloadPlanRequest():
                    return ReloadResponse(id=request.id, plan=kernel.reload_plan(), applied=False)
                case ReloadRequest():
                    plan = await kernel.reload()
                    return ReloadResponse(id=request.id, plan=plan, applied=True)
                case ListTimersRequest():
                    return ListTimersResponse(id=request.id, timers=kernel.delayed.pending())
                case CancelTimerRequest(timer_id=timer_id):
                    timer = await kernel.cancel_timer(timer_id)
                    return TimerResponse(id=request.id, timer=timer)
        except UnknownWorkflow as exc:
            return _error(request, IpcErrorCode.UNKNOWN_WORKFLOW, str(exc))
        except UnknownRun as exc:
            return _error(request, IpcErrorCode.UNKNOWN_RUN, str(exc))
        except UnknownTimer as exc:
            return _error(request, IpcErrorCode.UNKNOWN_TIMER, str(exc))
        except TooManyTimers as exc:
            return _error(request, IpcErrorCode.UNAVAILABLE, str(exc))
        except StoreUnavailable as exc:
            return _error(request, IpcErrorCode.UNAVAILABLE, str(exc))
        except NerveError as exc:
            return _error(request, IpcErrorCode.INTERNAL, str(exc))


def check_socket_path(path: Path) -> None:
    """Raise `SocketPathTooLong` if `path` cannot be a Unix socket's address."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        raise SocketPathTooLong(
            f"the socket path {path} is {size} bytes; a Unix socket path is limited to "
            f"{MAX_SOCKET_PATH}: use a workspace with a shorter path"
        )


_NOT_FOUND = {
    "sense": IpcErrorCode.UNKNOWN_SENSE,
    "run": IpcErrorCode.UNKNOWN_RUN,
    "signal": IpcErrorCode.UNKNOWN_SIGNAL,
}


def _error(request: DaemonRequest, code: IpcErrorCode, message: str) -> ErrorResponse:
    return error_response(IpcError(code, message, request.id))


async def _send(stream: SocketStream, response: OkResponse | ErrorResponse) -> bool:
    try:
        line = encode_message(response)
    except (TypeError, ValueError) as exc:  # a response JSON cannot hold: say so, not die
        log.exception("a %s response could not be encoded", type(response).__name__)
        error = IpcError(IpcErrorCode.INTERNAL, f"the response could not be encoded: {exc}")
        line = encode_message(error_response(error))
    try:
        await stream.send(line)
        return True
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        return False


def _same_user(stream: SocketStream) -> bool:
    """Whether the peer runs as our user (SO_PEERCRED); anyone else is refused."""
    raw: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    try:
        credentials = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return True  # no peer credentials on this platform: the 0600 mode is the guard
    _pid, uid, _gid = struct.unpack("3i", credentials)
    if uid != os.getuid():
        log.warning("refused an IPC connection from uid %s", uid)
        return False
    return True
