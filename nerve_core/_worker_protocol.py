"""The kernel ↔ worker protocol: newline-delimited JSON (orjson) over a dedicated socketpair.

Both ends import these messages; the wire form of each is written once, in `encode_worker_message`
and `decode_worker_message`. Kernel → worker: `ComputeRequest`, `ShutdownRequest`. Worker →
kernel: `WorkerReady` (the handshake, with each sense's load error if any), `ComputeResult`,
`SenseLog`. A line that does not decode is a protocol error: the kernel kills that worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson

from ._events import Signal, TriggerKind
from ._result import Result, err, ok


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


WorkerMessage: TypeAlias = ComputeRequest | ShutdownRequest | WorkerReady | ComputeResult | SenseLog


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
        return err(f"unknown worker message type {kind!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return err(f"malformed worker message ({type(exc).__name__}: {exc}): {line[:200]!r}")
