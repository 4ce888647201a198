"""The workflow worker: the process of one workflow, forked from the fork server.

It imports `workflows/<name>/workflow.py` (after the fork: a respawned worker sees the code on
disk now) and runs threads as anyio tasks, as many at once as the kernel starts (it keeps the
workflow's `concurrency`): `def` roles and moderators in worker threads, `async def` ones on the
loop. Each round the moderator picks a role or END; the role's return is sent to the kernel as a
`ThreadMessage`, and the round after it starts only once the kernel has acknowledged it, that
is, committed it. A dead kernel ends the worker (the watchdog of `worker_runtime`).
"""

from __future__ import annotations

import inspect
import math
import os
import random
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import UNIXSocketStream
from anyio.lowlevel import EventLoopToken, current_token
from anyio.streams.buffered import BufferedByteReceiveStream
from sqlalchemy import Engine

from nerve_core import (
    END,
    MAX_LINE_BYTES,
    CancelThread,
    LimitGrant,
    LimitRequest,
    MessageAck,
    Progress,
    RunLog,
    ShutdownRequest,
    StartThread,
    ThreadEnd,
    ThreadMessage,
    WorkerMessage,
    WorkerReady,
    WorkflowDefinition,
    WorkflowMessage,
    Workspace,
    check_progress,
    decode_worker_message,
    encode_worker_message,
    require_name,
)
from nerve_core.errors import NerveError
from nerve_store import BlobStore, open_sense_db_readonly

from ..supervise.user_modules import load_workflow_definition
from ..supervise.worker_runtime import (
    LimitError,
    ProgressPacer,
    QuietSocket,
    check_limit,
    check_payload,
    loggable,
    redirect_output,
    watch_kernel,
)


class RoleContext:
    """The `ctx` a role receives (DESIGN.md, "Workflow contract")."""

    def __init__(
        self, runtime: WorkflowRuntime, run_id: str, prompt: str, thread: Sequence[WorkflowMessage]
    ) -> None:
        self.run_id = run_id
        self.prompt = prompt
        self.thread = tuple(thread)
        self._runtime = runtime

    @property
    def blobs(self) -> BlobStore:
        return self._runtime.blobs

    def peer(self, sense: str) -> Engine:
        """A sense's database, read-only."""
        return self._runtime.peer(sense)

    def log(self, level: str, message: str, **fields: Any) -> None:
        """A row in logs.db (type `workflow.log`, source the workflow, ref the run)."""
        safe = loggable(fields)
        self._runtime.post(RunLog(self.run_id, str(level), str(message), safe))

    def progress(self, fraction: float, note: str = "") -> None:
        """How far this run has come, from 0 to 1, with a short note: shown by `nerve workflow
        list` and `nerve explain run` while it runs (at most ten updates a second go out)."""
        value, text = check_progress(fraction, note)
        if self._runtime.pacer.due(self.run_id, value):
            self._runtime.post(Progress(self.run_id, value, text))

    def limit(self, name: str, rate: str) -> None:
        """Wait until a call under `name` keeps within `rate` (`"30/m"`, `"10/2s"`), counted
        across every sense and role of this daemon. For a `def` role; an `async def` one awaits
        `limit_async()` instead (this would block every run of the worker)."""
        if threading.get_ident() == self._runtime.loop_thread:
            raise RuntimeError("ctx.limit() would block the loop: use await ctx.limit_async()")
        runtime = self._runtime
        at = anyio.from_thread.run(runtime.reserve, name, rate, self.run_id, token=runtime.token)
        time.sleep(max(0.0, at - time.monotonic()))

    async def limit_async(self, name: str, rate: str) -> None:
        """`limit()` for an `async def` role: the same count, waited for with `await`."""
        at = await self._runtime.reserve(name, rate, self.run_id)
        await anyio.sleep(max(0.0, at - time.monotonic()))


class WorkflowRuntime:
    def __init__(self, workspace: Workspace, name: str, token: EventLoopToken) -> None:
        self.workspace = workspace
        self.name = name
        self.blobs = BlobStore(workspace.blobs_dir)
        self.pacer = ProgressPacer()
        self.definition: WorkflowDefinition | None = None
        self.load_error: str | None = None
        self._peers: dict[str, Engine] = {}
        self._peers_lock = threading.Lock()
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._acks: dict[tuple[str, int], anyio.Event] = {}
        self._outbox_in, self._outbox_out = anyio.create_memory_object_stream[WorkerMessage](
            math.inf
        )
        self._grants: dict[int, tuple[anyio.Event, list[LimitGrant]]] = {}
        self._limit_ids = 0
        self.loop_thread = threading.get_ident()
        self.token = token

    def load(self) -> None:
        try:
            self.definition = load_workflow_definition(self.workspace, self.name)
        except NerveError as exc:
            self.load_error = str(exc)

    def peer(self, sense: str) -> Engine:
        require_name(sense, "sense name")
        with self._peers_lock:
            if sense not in self._peers:
                self._peers[sense] = open_sense_db_readonly(self.workspace, sense)
            return self._peers[sense]

    def post(self, message: WorkerMessage) -> None:
        """Queue a message to the kernel, from the loop or from a role's thread."""
        if threading.get_ident() == self.loop_thread:
            self._outbox_in.send_nowait(message)
        else:
            anyio.from_thread.run_sync(self._outbox_in.send_nowait, message, token=self.token)

    async def send_loop(self, stream: UNIXSocketStream) -> None:
        async for message in self._outbox_out:
            await stream.send(encode_worker_message(message))

    def acknowledged(self, ack: MessageAck) -> None:
        event = self._acks.pop((ack.run_id, ack.round), None)
        if event is not None:
            event.set()

    async def reserve(self, name: str, rate: str, of: str) -> float:
        """Ask the kernel for the instant a call under `name` may go (time.monotonic())."""
        checked, count, period = check_limit(name, rate)
        self._limit_ids += 1
        key = self._limit_ids
        event, box = self._grants[key] = (anyio.Event(), [])
        self.post(LimitRequest(key, checked, count, period, of))
        try:
            await event.wait()
        finally:
            self._grants.pop(key, None)
        grant = box[0]
        if grant.error is not None:
            raise LimitError(grant.error)
        return grant.at

    def granted(self, grant: LimitGrant) -> None:
        waiting = self._grants.get(grant.id)
        if waiting is not None:
            waiting[1].append(grant)
            waiting[0].set()

    def cancel(self, run_id: str) -> None:
        scope = self._scopes.get(run_id)
        if scope is not None:
            scope.cancel()

    async def run_thread(self, start: StartThread) -> None:
        scope = anyio.CancelScope()
        self._scopes[start.run_id] = scope
        try:
            with scope:
                end = await self._rounds(start)
                self.post(end)
            if scope.cancelled_caught:
                self.post(ThreadEnd(start.run_id, "cancelled", "cancelled"))
        finally:
            self._scopes.pop(start.run_id, None)

    async def _rounds(self, start: StartThread) -> ThreadEnd:
        run_id = start.run_id
        if self.definition is None:
            return ThreadEnd(run_id, "failed", self.load_error or "workflow not loaded")
        roles = self.definition.roles
        thread = list(start.thread)
        try:
            while True:
                turns = len(thread) - 1
                choice = await _moderate(self.definition.moderator, tuple(thread))
                if choice == END:
                    return ThreadEnd(run_id, "completed", None)
                if not isinstance(choice, str) or choice not in roles:
                    known = ", ".join(sorted(roles))
                    return ThreadEnd(
                        run_id,
                        "failed",
                        f"the moderator named an unknown role {choice!r} (roles: {known})",
                    )
                if turns >= start.max_rounds:
                    return ThreadEnd(
                        run_id, "failed", f"{start.max_rounds} role turns passed without END"
                    )
                ctx = RoleContext(self, run_id, start.prompt, thread)
                content = await self._try(roles[choice], ctx, choice, start)
                check_payload(content, f"role {choice!r}")
                acked = anyio.Event()
                self._acks[(run_id, turns + 1)] = acked
                self.post(ThreadMessage(run_id, turns + 1, choice, content))
                await acked.wait()  # committed by the kernel: the next round may begin
                thread.append(
                    WorkflowMessage(turns + 1, choice, content, time.time_ns() // 1_000_000)
                )
        except Exception as exc:
            return ThreadEnd(
                run_id, "failed", f"{type(exc).__name__}: {exc}", traceback.format_exc()
            )

    async def _try(self, role: Any, ctx: RoleContext, name: str, start: StartThread) -> Any:
        """Call `role`; with `retry:`, a role that raises is called again after a backoff (each
        failed try logged on the run) until its tries are spent, then the run fails."""
        attempts, first, most = start.retry or (1, 0.0, 0.0)
        for attempt in range(1, attempts + 1):
            try:
                return await _call(role, ctx)
            except Exception as exc:
                if attempt >= attempts:
                    raise
                wait = min(first * 2 ** (attempt - 1), most) * (0.5 + random.random() / 2)
                message = f"role {name!r} raised (try {attempt} of {attempts}): retrying"
                fields = {"error": f"{type(exc).__name__}: {exc}", "retryInS": round(wait, 3)}
                self.post(RunLog(start.run_id, "warning", message, fields))
                await anyio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


async def _moderate(moderator: Any, thread: tuple[WorkflowMessage, ...]) -> Any:
    """Ask the moderator for the next role. A `def` moderator is called on the loop: it decides
    from the thread and must not block (a role is where work happens)."""
    if inspect.iscoroutinefunction(moderator):
        return await moderator(thread)
    choice = moderator(thread)
    if inspect.isawaitable(choice):
        choice = await choice
    return choice


# A `def` role gets its thread at once: the workflow's `concurrency` is the cap on runs at once,
# not anyio's default pool of 40 threads (a 41st run's role, a call elsewhere, would wait).
_ROLE_THREADS = anyio.CapacityLimiter(math.inf)


async def _call(function: Any, argument: Any) -> Any:
    """Call a role or moderator: `async def` on the loop, `def` in a worker thread (abandoned,
    not waited for, if the run is cancelled)."""
    if inspect.iscoroutinefunction(function):
        return await function(argument)
    value = await anyio.to_thread.run_sync(
        function, argument, abandon_on_cancel=True, limiter=_ROLE_THREADS
    )
    if inspect.isawaitable(value):
        value = await value
    return value


async def serve(args: dict[str, Any], proto_fd: int) -> int:
    sock = QuietSocket(fileno=proto_fd)
    watch_kernel(sock)
    stream = await UNIXSocketStream.from_socket(sock)
    reader = BufferedByteReceiveStream(stream)
    workspace = Workspace(Path(args["root"]))
    runtime = WorkflowRuntime(workspace, args["workflow"], current_token())
    runtime.load()
    errors = {runtime.name: runtime.load_error} if runtime.load_error else {}
    await stream.send(encode_worker_message(WorkerReady(os.getpid(), errors)))
    async with anyio.create_task_group() as group:
        group.start_soon(runtime.send_loop, stream)
        while True:
            try:
                line = await reader.receive_until(b"\n", MAX_LINE_BYTES * 16)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                os._exit(0)  # the kernel is gone
            decoded = decode_worker_message(line)
            if not decoded.ok:
                print(f"nerve workflow worker: {decoded.error}", flush=True)
                return 3
            match decoded.value:
                case StartThread() as start:
                    group.start_soon(runtime.run_thread, start)
                case MessageAck() as ack:
                    runtime.acknowledged(ack)
                case LimitGrant() as grant:
                    runtime.granted(grant)
                case CancelThread(run_id=run_id):
                    runtime.cancel(run_id)
                case ShutdownRequest():
                    group.cancel_scope.cancel()
                    break
    return 0


def main(args: dict[str, Any], proto_fd: int, output_fd: int) -> int:
    """Entry point in the forked child: `args` holds `root` and `workflow`."""
    redirect_output(output_fd)
    return anyio.run(serve, args, proto_fd)
