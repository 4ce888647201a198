"""The live view of `nerve dev`: one line per event worth a person's attention."""

from __future__ import annotations

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


class LiveView:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def starting(self, config: NerveConfig) -> None:
        senses = counted(len(config.senses), "sense")
        groups = counted(len(config.sense_groups()), "group")
        console().print(f"nerve dev: {self.workspace.root} ({senses} in {groups})")
        log = self.workspace.relative(self.workspace.log_file)
        console().print(f"daemon log: {log} · Ctrl+C stops", style="dim")

    def ready(self, kernel: Kernel) -> None:
        ours = [worker for worker in kernel.health().workers if worker.kind != "fork-server"]
        running = sum(1 for worker in ours if worker.state == "RUNNING")
        console().print(f"ready: {running} of {len(ours)} workers running", style="dim")

    def row(self, row: LogRow) -> None:
        if row.type in _QUIET:
            return
        when = datetime.fromtimestamp((row.ts or 0) / 1000).strftime("%H:%M:%S")
        style = _STYLES.get(row.type, "")
        detail = escape(_describe(row))
        console().print(f"{when} [{style}]{row.type:<17}[/] {escape(row.source):<16} {detail}")

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
