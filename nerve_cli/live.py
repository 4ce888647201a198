"""The live view of `nerve dev`: one line per event worth a person's attention."""

from __future__ import annotations

import queue
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from rich.markup import escape

from nerve_core import START, LogType, NerveConfig, Workspace

from .output import clip, console, counted

if TYPE_CHECKING:
    from nerve_daemon.kernel import Kernel
    from nerve_store import LogRow

_STYLES = {
    LogType.SIGNAL: "green",
    LogType.COMPUTE_ERROR: "bold red",
    LogType.COMPUTE_TIMEOUT: "bold red",
    LogType.COMPUTE_CRASH: "bold red",
    LogType.DIRECTIVE_INVALID: "yellow",
    LogType.WORKFLOW_LAUNCH: "magenta",
    LogType.WORKFLOW_STATUS: "magenta",
    LogType.WORKER_START: "cyan",
    LogType.WORKER_EXIT: "cyan",
    LogType.WORKER_CRASH_LOOP: "bold red",
    LogType.WORKER_LIMIT: "bold red",
    LogType.CONFIG_ERROR: "bold red",
    LogType.SENSE_LOG: "blue",
    LogType.WORKFLOW_LOG: "blue",
    LogType.WORKFLOW_MESSAGE: "magenta",
}
_QUIET = {LogType.KERNEL_START, LogType.KERNEL_STOP}


class _Printer:
    """Lines printed by a thread of their own, so the kernel's loop never waits on the
    terminal (a paused terminal, a slow pipe). At most `limit` lines wait; past that they are
    dropped, and how many is said once printing can go on."""

    def __init__(self, limit: int = 10_000) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue(maxsize=limit)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="nerve-live-view", daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Print what waits (for up to `timeout`), then stop the thread."""
        try:
            self._lines.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        shown = 0
        while (line := self._lines.get()) is not None:
            if self.dropped > shown:
                console().print(f"({self.dropped - shown} lines not shown: output fell behind)")
                shown = self.dropped
            console().print(line)


class LiveView:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._printer = _Printer()

    def close(self) -> None:
        self._printer.close()

    def starting(self, config: NerveConfig) -> None:
        senses = counted(len(config.senses), "sense")
        groups = counted(len(config.sense_groups()), "group")
        console().print(f"nerve dev: {self.workspace.root} ({senses} in {groups})")
        log = self.workspace.relative(self.workspace.log_file)
        console().print(f"daemon log: {log} · Ctrl+C stops", style="dim")

    def ready(self, kernel: Kernel) -> None:
        ours = [worker for worker in kernel.health().workers if worker.kind != "fork-server"]
        running = sum(1 for worker in ours if worker.state == "RUNNING")
        self._printer.put(f"[dim]ready: {running} of {len(ours)} workers running[/]")

    def row(self, row: LogRow) -> None:
        if row.type in _QUIET:
            return
        when = datetime.fromtimestamp((row.ts or 0) / 1000).strftime("%H:%M:%S")
        kind = f"{row.type:<17}"
        if row.type in _STYLES:  # an empty "[]" is no tag, and its "[/]" closes nothing
            kind = f"[{_STYLES[row.type]}]{kind}[/]"
        detail = escape(_describe(row))
        self._printer.put(f"{when} {kind} {escape(row.source):<16} {detail}")

    def stopped(self) -> None:
        console().print("stopped", style="dim")


def _describe(row: LogRow) -> str:
    payload: Any = row.payload
    if row.type in (LogType.COMPUTE_ERROR,) and isinstance(payload, dict):
        where = " (while loading)" if payload.get("phase") == "load" else ""
        return f"{payload.get('error')}{where}"
    if row.type in (LogType.WORKER_START, LogType.WORKER_EXIT) and isinstance(payload, dict):
        if "group" in payload:
            owner = f"group {payload['group']}"
        elif "workflow" in payload:
            owner = f"workflow {payload['workflow']}"
        else:
            owner = str(payload.get("worker"))
        if row.type is LogType.WORKER_EXIT:
            how = f"{payload.get('reason')}, code {payload.get('code')}"
            return f"{owner} pid {payload.get('pid')} exited ({how})"
        senses = payload.get("senses")
        return f"{owner} pid {payload.get('pid')}" + (f": {', '.join(senses)}" if senses else "")
    if row.type is LogType.WORKFLOW_STATUS and isinstance(payload, dict):
        reason = f" ({payload['reason']})" if payload.get("reason") else ""
        return f"run {row.ref_id} {payload.get('status')}{reason}"
    if row.type is LogType.WORKFLOW_MESSAGE and isinstance(payload, dict):
        content = clip(orjson.dumps(payload.get("content")).decode(), 80)
        role = "START" if payload.get("role") == START else payload.get("role")
        return f"run {row.ref_id} round {payload.get('round')} {role}: {content}"
    return clip(orjson.dumps(payload).decode(), 120)
