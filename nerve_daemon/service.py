"""Running the kernel as a service of a workspace: the workspace lock, the daemon text log,
graceful stop on SIGINT/SIGTERM, and systemd's notifications when it runs as a `Type=notify`
service. `nerve dev` runs it in the foreground; the daemon (`nerve start`, `nerve daemon run`)
runs the same thing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import logging.handlers
import os
import queue
import signal
from collections.abc import Callable, Iterator
from functools import partial

import anyio

from nerve_core import NerveConfig, Workspace
from nerve_core.errors import NerveError
from nerve_store import LogRow

from .control.ipc import check_socket_path
from .control.notify import Notifier
from .kernel import Kernel, KernelOptions
from .state import KernelState

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

log = logging.getLogger("nerve")


class WorkspaceBusy(NerveError):
    pass


@contextlib.contextmanager
def workspace_lock(workspace: Workspace) -> Iterator[None]:
    """Hold `nerve.lock` for as long as this nerve runs: one kernel per workspace. The lock is
    the kernel's open file, so a killed kernel releases it and never blocks the next start."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(workspace.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise WorkspaceBusy(
                f"another nerve is already running in {workspace.root} (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def daemon_log(workspace: Workspace, level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Send the `nerve` logger (kernel events and worker output) to logs/nerve.log, rotated, for
    as long as the block runs. Records are written by a thread of their own: a log call on the
    kernel's loop only queues its record, so a slow or stalled disk never stalls the loop. What
    is queued is written before the block ends."""
    workspace.log_file.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        workspace.log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(records)
    listener = logging.handlers.QueueListener(records, file_handler)
    logger = logging.getLogger("nerve")
    listener.start()
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield file_handler
    finally:
        logger.removeHandler(handler)
        listener.stop()
        file_handler.close()


async def serve(
    config: NerveConfig,
    workspace: Workspace,
    on_row: Callable[[LogRow], None] | None = None,
    on_ready: Callable[[Kernel], None] | None = None,
    *,
    reload_on_hangup: bool = False,
) -> None:
    """Run a kernel for `workspace` until SIGINT or SIGTERM (or SIGHUP, as a terminal closing
    does, unless `reload_on_hangup`), then stop it gracefully. With `reload_on_hangup` (the
    daemon), SIGHUP reloads as `nerve reload` does, as `systemctl reload` expects."""
    check_socket_path(workspace.socket_path)  # before any worker starts
    notify = Notifier.from_environment()  # before any worker starts too: they do not inherit it
    kernel = Kernel(
        config, workspace.root, KernelOptions(on_row=on_row, serve_ipc=True, watch_files=True)
    )
    ready = anyio.Event()
    try:
        async with anyio.create_task_group() as group:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(*_SIGNALS) as signals:
                    async for received in signals:
                        log.info("received %s", signal.Signals(received).name)
                        if received == signal.SIGHUP and reload_on_hangup:
                            await _reload(kernel, notify, ready)
                        else:
                            notify.stopping()
                            kernel.stop()

            group.start_soon(on_signal)
            await group.start(kernel.run)
            ready.set()
            notify.ready(status_line(kernel))
            group.start_soon(notify.watch, partial(status_line, kernel))
            if on_ready is not None:
                on_ready(kernel)
            await kernel.stopped.wait()
            group.cancel_scope.cancel()  # the signal receiver, the watchdog: nothing left to do
    finally:
        notify.close()


async def _reload(kernel: Kernel, notify: Notifier, ready: anyio.Event) -> None:
    """SIGHUP to the daemon: `nerve reload`, said to systemd as a reload (`Type=notify-reload`);
    one that fails is logged, and the daemon runs on as it was."""
    if not ready.is_set():
        log.info("SIGHUP before nerve was ready: nothing to reload yet")
        return
    notify.reloading()
    try:
        plan = await kernel.reload()
    except Exception:  # no signal may stop the daemon
        log.exception("the reload on SIGHUP failed: the running configuration stays")
    else:  # an invalid nerve.yaml is said by the reload itself (nerve.log, a config.error row)
        if plan["empty"]:
            log.info("reload on SIGHUP: nothing changed")
    finally:
        notify.ready(status_line(kernel))


def status_line(kernel: Kernel) -> str:
    """What the service manager shows (systemd's `STATUS=`): what is wrong, else what it does."""
    state: KernelState = kernel.state()
    problems = [problem for problem in (state.store_problem, state.store_damage) if problem]
    fatal = [worker.name for worker in state.workers if worker.state == "FATAL"]
    if fatal:
        problems.append(f"crash-looped, not respawning: {', '.join(fatal)} (see logs/nerve.log)")
    senses = f"{len(state.senses)} sense{'' if len(state.senses) == 1 else 's'}"
    return "; ".join(problems) or f"serving {kernel.workspace.root}: {senses}"
