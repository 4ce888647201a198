"""`nerve explain run` and `nerve explain signal`: a run walked back through its chain of signals
to what started it, and what each listening sense did with a signal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nerve_core import LogType, NerveConfig, TriggerKind
from nerve_core.errors import NotFound
from nerve_store import LogRecord, LogStore

from ..senses.ledger import Entry, Reason
from ..senses.scheduler import trigger_kind_of
from .words import OUTCOME_TYPES, RAN, decision_row_sentence, entry_sentence, row_dict

MAX_CHAIN = 64  # steps walked back from a run before giving up (a chain is never this deep)
_ROOTS = {
    TriggerKind.INTERVAL: "an interval tick",
    TriggerKind.STARTUP: "the compute at start (after the grace period)",
    TriggerKind.MANUAL: "a manual trigger (`nerve sense trigger` or the socket)",
    TriggerKind.CRON: "a cron tick",
    TriggerKind.CATCH_UP: "a catch-up compute at start, for ticks missed while nerve was down",
    TriggerKind.DELAYED: "a delayed trigger (`--in`/`--at`) that came due",
}


def explain_run(store: LogStore | None, run_id: str) -> dict[str, Any]:
    run = None if store is None else store.run(run_id)
    if store is None or run is None:
        raise NotFound(f'no workflow run "{run_id}"')
    # Its status changes and its stalls (`stalled: true`, with `silentS` and `onStall`).
    kinds = (LogType.WORKFLOW_STATUS, LogType.WORKFLOW_STALL)
    history = [
        {
            "at": row.ts,
            **({"stalled": True} if row.type == LogType.WORKFLOW_STALL else {}),
            **(row.payload if isinstance(row.payload, dict) else {}),
        }
        for row in store.logs(ref_id=run_id, types=kinds, limit=1000)
    ]
    return {
        "run": run.run_id,
        "workflow": run.workflow,
        "status": str(run.status),
        "origin": run.origin,
        "cause": run.cause,
        "createdAt": run.created_at,
        "endedAt": run.ended_at,
        "rounds": run.rounds,
        "error": run.error,
        "chain": _chain(store, run_id, run.origin, run.cause),
        "history": history,
    }


def _chain(store: LogStore, run_id: str, origin: str, cause: str | None) -> list[dict[str, Any]]:
    """From the run's root to its launch: each step a compute and the trigger it ran for."""
    if origin == "cli":
        return [{"step": "command", "what": "`nerve workflow trigger` (or the socket's request)"}]
    if origin == "timer":
        what = "a delayed `nerve workflow trigger --in/--at` (or the socket's) that came due"
        return [{"step": "timer", "timer": cause, "what": what}]
    steps: list[dict[str, Any]] = []
    launch = store.logs(ref_id=run_id, type=LogType.WORKFLOW_LAUNCH, limit=1)
    if launch:
        row = launch[0]
        steps.append(_step("launch", row))
        parent = row.parent
    else:  # archived, or written before launch rows named their run
        steps.append({"step": "launch", "sense": origin, "trigger": cause})
        parent = None
    while parent is not None and len(steps) < MAX_CHAIN:
        found = store.logs(ref_id=parent, type=LogType.SIGNAL, limit=1)
        if not found:
            steps.append({"step": "signal", "signal": parent, "missing": "not in logs.db"})
            break
        steps.append(_step("signal", found[0]))
        parent = found[0].parent
    trigger = steps[-1].get("trigger")
    kind = trigger_kind_of(trigger) if isinstance(trigger, str) else None
    if kind is not None and kind is not TriggerKind.SIGNAL:
        steps.append({"step": "root", "kind": str(kind), "what": _ROOTS[kind]})
    return steps[::-1]


def _step(step: str, row: LogRecord) -> dict[str, Any]:
    kind = trigger_kind_of(row.cause) if row.cause else None
    found: dict[str, Any] = {
        "step": step,
        "sense": row.source,
        "at": row.ts,
        "trigger": row.cause,
        "kind": None if kind is None else str(kind),
    }
    if step == "signal":
        found["signal"] = row.ref_id
    if row.parent is not None:
        found["forSignal"] = row.parent
    return found


# -- signal --------------------------------------------------------------------------------------


def explain_signal(
    config: NerveConfig,
    store: LogStore | None,
    signal_id: str,
    live: Sequence[tuple[str, Entry]] | None,
) -> dict[str, Any]:
    found = [] if store is None else store.logs(ref_id=signal_id, type=LogType.SIGNAL, limit=1)
    if not found:
        raise NotFound(f'no signal "{signal_id}" in logs.db')
    signal = found[0]
    subscribers = sorted({r.sense for r in config.reflexes if signal.source in r.on})
    assert store is not None
    rows = store.logs(parent=signal_id, limit=500)
    deliveries = []
    for sense in subscribers:
        entries = [entry for name, entry in (live or ()) if name == sense]
        own = [row for row in rows if row.source == sense]
        deliveries.append(
            {
                "sense": sense,
                "decisions": [entry.as_dict() for entry in entries],
                "rows": [row_dict(row) for row in own],
                "summary": _delivery(entries, own, live is not None),
            }
        )
    return {
        "signal": signal_id,
        "source": signal.source,
        "at": signal.ts,
        "trigger": signal.cause,
        "forSignal": signal.parent,
        "payload": signal.payload,
        "subscribers": subscribers,
        "deliveries": deliveries,
    }


def _delivery(entries: list[Entry], rows: list[LogRecord], running: bool) -> str:
    outcomes = [row for row in rows if row.type in OUTCOME_TYPES]
    if outcomes:
        return f"computed for it: {', '.join(str(row.type) for row in outcomes)}"
    for entry in entries[::-1]:
        if entry.reason in RAN:
            return f"computed for it: {entry.reason}"
        if entry.reason is not Reason.RAN:
            return entry_sentence(entry)
    for row in rows:
        if row.type == LogType.SENSE_DECISION:
            return decision_row_sentence(row)
    if entries:
        return "a compute was asked for it"
    if running:
        return "no record: its decision is older than the ledger keeps"
    return "no record in logs.db (only decisions that lose work are rows)"
