"""The kernel ↔ worker protocol: newline-delimited JSON (orjson) over a dedicated socketpair.

Both ends import these messages; the wire form of each is written once, in `encode_worker_message`
and `decode_worker_message`. A line that does not decode is a protocol error: the kernel kills
that worker.

- Sense workers. Kernel → worker: `ComputeRequest`, `ShutdownRequest`. Worker → kernel:
  `WorkerReady` (the handshake, with each sense's load error if any), `ComputeResult`, `SenseLog`,
  `Progress` (of the sense computing now).
- Workflow workers. Kernel → worker: `StartThread` (also for `resume-thread`, with the persisted
  messages), `CancelThread`, `MessageAck`, `ShutdownRequest`. Worker → kernel: `WorkerReady`,
  `ThreadMessage` (a role's message: the worker goes on only once the kernel acks it, committed),
  `ThreadEnd`, `RunLog`, `Progress` (of a run).
- Both: `LimitRequest` (worker → kernel, `ctx.limit()`), answered by `LimitGrant`: the instant on
  the machine's monotonic clock (shared by every process) from which the call may go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson

from ._events import Signal, TriggerKind
from ._result import Result, err, ok
from .workflow import WorkflowMessage


@dataclass(frozen=True, slots=True)
class ComputeRequest:
    id: int
    sense: str
    trigger: TriggerKind
    signal: Signal | None = None


@dataclass(frozen=True, slots=True)
class ShutdownRequest:
    pass


@dataclass(frozen=True, slots=True)
class WorkerReady:
    pid: int
    errors: dict[str, str] = field(default_factory=dict)  # sense → why it cannot compute


@dataclass(frozen=True, slots=True)
class ComputeResult:
    id: int
    sense: str
    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    started_mono: float = 0.0  # time.monotonic() in the worker when compute began
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class SenseLog:
    sense: str
    level: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StartThread:
    run_id: str
    prompt: str
    max_rounds: int
    thread: list[WorkflowMessage]  # START first; more when resuming
    resume: bool = False
    retry: tuple[int, float, float] | None = None  # a raising role: (attempts, backoff, max)


@dataclass(frozen=True, slots=True)
class CancelThread:
    run_id: str


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    run_id: str
    round: int
    role: str
    content: Any


@dataclass(frozen=True, slots=True)
class MessageAck:
    run_id: str
    round: int


@dataclass(frozen=True, slots=True)
class ThreadEnd:
    run_id: str
    status: str  # "completed" | "failed" | "cancelled"
    reason: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class RunLog:
    run_id: str
    level: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a compute (`of` its sense) or a run (`of` its id) has come: `ctx.progress()`."""

    of: str
    fraction: float  # 0 to 1
    note: str = ""


@dataclass(frozen=True, slots=True)
class LimitRequest:
    """`ctx.limit(name, rate)`: reserve a call under `name`, at most `count` every `period_s`."""

    id: int  # the worker's own count, echoed by the grant
    name: str
    count: int
    period_s: float
    of: str = ""  # the sense computing, or the run, that asks (shown while it waits)


@dataclass(frozen=True, slots=True)
class LimitGrant:
    id: int
    at: float  # time.monotonic() from which the call may go; 0 with an error
    error: str | None = None  # why the kernel refused the request


MAX_PROGRESS_NOTE = 200  # characters of a progress note kept


def check_progress(fraction: object, note: object = "") -> tuple[float, str]:
    """`ctx.progress(fraction, note)`'s arguments, checked: a real number from 0 to 1, and a note
    (clipped to `MAX_PROGRESS_NOTE` characters). Raises `ValueError` saying what is wrong."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ValueError(f"progress is a number from 0 to 1, got {type(fraction).__name__}")
    if not 0.0 <= fraction <= 1.0:  # NaN fails this too
        raise ValueError(f"progress is a number from 0 to 1, got {fraction!r}")
    text = str(note)
    return float(fraction), text if len(text) <= MAX_PROGRESS_NOTE else text[:199] + "…"


WorkerMessage: TypeAlias = (
    ComputeRequest
    | ShutdownRequest
    | WorkerReady
    | ComputeResult
    | SenseLog
    | StartThread
    | CancelThread
    | ThreadMessage
    | MessageAck
    | ThreadEnd
    | RunLog
    | Progress
    | LimitRequest
    | LimitGrant
)


def encode_worker_message(message: WorkerMessage) -> bytes:
    """One line, newline included. Raises TypeError if a value is not JSON-serialisable."""
    match message:
        case ComputeRequest(id=id_, sense=sense, trigger=trigger, signal=signal):
            data: dict[str, Any] = {
                "t": "compute",
                "id": id_,
                "sense": sense,
                "trigger": str(trigger),
            }
            if signal is not None:
                data["signal"] = {
                    "id": signal.id,
                    "source": signal.source,
                    "payload": signal.payload,
                    "ts": signal.ts,
                }
        case ShutdownRequest():
            data = {"t": "shutdown"}
        case WorkerReady(pid=pid, errors=errors):
            data = {"t": "ready", "pid": pid, "errors": errors}
        case ComputeResult():
            data = {
                "t": "result",
                "id": message.id,
                "sense": message.sense,
                "ok": message.ok,
                "value": message.value,
                "error": message.error,
                "traceback": message.traceback,
                "started": message.started_mono,
                "ms": message.duration_ms,
            }
        case SenseLog(sense=sense, level=level, message=text, fields=fields):
            data = {"t": "log", "sense": sense, "level": level, "message": text, "fields": fields}
        case StartThread():
            data = {
                "t": "start-thread" if not message.resume else "resume-thread",
                "run": message.run_id,
                "prompt": message.prompt,
                "maxRounds": message.max_rounds,
                "thread": [[m.round, m.role, m.content, m.ts] for m in message.thread],
                "retry": None if message.retry is None else list(message.retry),
            }
        case CancelThread(run_id=run_id):
            data = {"t": "cancel-thread", "run": run_id}
        case ThreadMessage(run_id=run_id, round=round_, role=role, content=content):
            data = {
                "t": "message",
                "run": run_id,
                "round": round_,
                "role": role,
                "content": content,
            }
        case MessageAck(run_id=run_id, round=round_):
            data = {"t": "ack", "run": run_id, "round": round_}
        case ThreadEnd(run_id=run_id, status=status, reason=reason, traceback=trace):
            data = {
                "t": "thread-end",
                "run": run_id,
                "status": status,
                "reason": reason,
                "traceback": trace,
            }
        case Progress(of=of, fraction=fraction, note=note):
            data = {"t": "progress", "of": of, "fraction": fraction, "note": note}
        case LimitRequest(id=id_, name=name, count=count, period_s=period, of=of):
            data = {
                "t": "limit",
                "id": id_,
                "name": name,
                "count": count,
                "period": period,
                "of": of,
            }
        case LimitGrant(id=id_, at=at, error=error):
            data = {"t": "grant", "id": id_, "at": at, "error": error}
        case RunLog(run_id=run_id, level=level, message=text, fields=fields):
            data = {
                "t": "run-log",
                "run": run_id,
                "level": level,
                "message": text,
                "fields": fields,
            }
    return orjson.dumps(data) + b"\n"


def decode_worker_message(line: bytes) -> Result[WorkerMessage, str]:
    try:
        data = orjson.loads(line)
        kind = data["t"]
        if kind == "compute":
            raw = data.get("signal")
            signal = (
                None if raw is None else Signal(raw["id"], raw["source"], raw["payload"], raw["ts"])
            )
            return ok(
                ComputeRequest(data["id"], data["sense"], TriggerKind(data["trigger"]), signal)
            )
        if kind == "shutdown":
            return ok(ShutdownRequest())
        if kind == "ready":
            return ok(WorkerReady(data["pid"], dict(data["errors"])))
        if kind == "result":
            return ok(
                ComputeResult(
                    data["id"],
                    data["sense"],
                    bool(data["ok"]),
                    data["value"],
                    data["error"],
                    data["traceback"],
                    data["started"],
                    data["ms"],
                )
            )
        if kind == "log":
            return ok(SenseLog(data["sense"], data["level"], data["message"], dict(data["fields"])))
        if kind in ("start-thread", "resume-thread"):
            thread = [
                WorkflowMessage(r, role, content, ts) for r, role, content, ts in data["thread"]
            ]
            return ok(
                StartThread(
                    data["run"],
                    data["prompt"],
                    data["maxRounds"],
                    thread,
                    resume=kind == "resume-thread",
                    retry=None if data.get("retry") is None else tuple(data["retry"]),
                )
            )
        if kind == "cancel-thread":
            return ok(CancelThread(data["run"]))
        if kind == "message":
            return ok(ThreadMessage(data["run"], data["round"], data["role"], data["content"]))
        if kind == "ack":
            return ok(MessageAck(data["run"], data["round"]))
        if kind == "thread-end":
            return ok(ThreadEnd(data["run"], data["status"], data["reason"], data["traceback"]))
        if kind == "progress":
            fraction, note = check_progress(data["fraction"], data["note"])
            return ok(Progress(str(data["of"]), fraction, note))
        if kind == "limit":
            return ok(
                LimitRequest(
                    int(data["id"]),
                    str(data["name"]),
                    data["count"],
                    data["period"],
                    str(data.get("of", "")),
                )
            )
        if kind == "grant":
            return ok(LimitGrant(int(data["id"]), float(data["at"]), data["error"]))
        if kind == "run-log":
            return ok(RunLog(data["run"], data["level"], data["message"], dict(data["fields"])))
        return err(f"unknown worker message type {kind!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return err(f"malformed worker message ({type(exc).__name__}: {exc}): {line[:200]!r}")
