"""`nerve explain`: why a sense computed or did not, where a run came from, what a signal did.

Each answer is a JSON document built from what the daemon knows now (its state, the scheduler's
view and the decision ledger, when it runs) and from logs.db (always, so that an answer outlives
the daemon). The same functions serve the IPC `explain` request and the CLI with no daemon: only
`live` differs. Reading logs.db is synchronous; the kernel calls these off its event loop.

A chain is walked by lineage: a run's launch row (its `ref_id` is the run) names the trigger it
came from (`cause`) and the signal that trigger was made for (`parent`); that signal's row names
its own compute's trigger and signal; and so on to a trigger with no signal, whose id says its
kind (`i-` interval tick, `u-` startup compute, `m-` manual `nerve sense trigger`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nerve_core import LogType, NerveConfig, TriggerKind, format_duration
from nerve_core.errors import NotFound
from nerve_store import LogRecord, LogStore

from .senses.ledger import Entry, Reason
from .senses.scheduler import trigger_kind_of

MAX_CHAIN = 64  # steps walked back from a run before giving up (a chain is never this deep)
RECENT = 10  # entries and rows shown

# The rows a compute's outcome writes (a compute that returns None writes none).
OUTCOME_TYPES = (
    LogType.SIGNAL,
    LogType.COMPUTE_ERROR,
    LogType.COMPUTE_TIMEOUT,
    LogType.COMPUTE_CRASH,
    LogType.WORKFLOW_LAUNCH,
    LogType.DIRECTIVE_INVALID,
)
_RAN = frozenset({Reason.COMPLETED, Reason.FAILED, Reason.TIMED_OUT, Reason.CRASHED})
_ROOTS = {
    TriggerKind.INTERVAL: "an interval tick",
    TriggerKind.STARTUP: "the compute at start (after the grace period)",
    TriggerKind.MANUAL: "a manual trigger (`nerve sense trigger` or the socket)",
}


@dataclass(frozen=True, slots=True)
class LiveSense:
    """What the running daemon knows of a sense (times in ms since the epoch)."""

    state: str
    pending: Entry | None = None
    running: Entry | None = None
    throttle_until: int | None = None
    grace_until: int | None = None
    next_ticks: tuple[int, ...] = ()
    recent: Sequence[Entry] = ()
    counts: dict[str, int] = field(default_factory=dict)
    last_run_at: int | None = None
    progress: dict[str, object] | None = None  # what its compute in flight last reported


# -- sense ---------------------------------------------------------------------------------------


def explain_sense(
    config: NerveConfig,
    store: LogStore | None,
    name: str,
    live: LiveSense | None,
    *,
    why_not: bool = False,
    since: int | None = None,
) -> dict[str, Any]:
    sense = config.senses.get(name)
    if sense is None:
        raise NotFound(f'no sense "{name}" in nerve.yaml')
    reflexes: list[dict[str, Any]] = []
    for reflex in config.reflexes_of(name):
        if reflex.interval is not None:
            reflexes.append({"interval": format_duration(reflex.interval)})
        if reflex.on:
            reflexes.append({"on": list(reflex.on)})
    doc: dict[str, Any] = {
        "sense": name,
        "group": sense.group,
        "daemon": "running" if live is not None else "not running",
        "settings": {
            "throttle": format_duration(sense.throttle),
            "gracePeriod": format_duration(sense.grace_period),
            "timeout": format_duration(sense.timeout),
        },
        "reflexes": reflexes,
    }
    rows = _sense_rows(store, name)
    if live is not None:
        doc["state"] = live.state
        doc["now"] = _now(live)
        doc["counts"] = live.counts
        doc["recent"] = [entry.as_dict() for entry in list(live.recent)[-RECENT:][::-1]]
    else:
        doc["state"] = _offline_state(store, sense.group)
    doc["rows"] = [_row(row) for row in rows]
    if why_not:
        doc["whyNot"] = _why_not(config, store, name, live, rows, since)
    return doc


def _now(live: LiveSense) -> dict[str, Any]:
    now: dict[str, Any] = {}
    if live.running is not None:
        now["running"] = live.running.as_dict()
        if live.progress is not None:
            now["running"]["progress"] = live.progress
    if live.pending is not None:
        now["pending"] = live.pending.as_dict()
    if live.throttle_until is not None:
        now["throttledUntil"] = live.throttle_until
    if live.grace_until is not None:
        now["heldUntil"] = live.grace_until
    if live.next_ticks:
        now["nextTicks"] = list(live.next_ticks)
    return now


def _sense_rows(store: LogStore | None, name: str) -> list[LogRecord]:
    if store is None:
        return []
    types = (*OUTCOME_TYPES, LogType.SENSE_DECISION)
    return store.logs(source=name, types=types, limit=RECENT, newest_first=True)


def _offline_state(store: LogStore | None, group: str) -> str:
    """The group's last known state, from its worker rows."""
    if store is None:
        return "unknown (nerve has not run here)"
    for row in store.logs(
        types=(LogType.WORKER_START, LogType.WORKER_CRASH_LOOP), limit=500, newest_first=True
    ):
        payload = row.payload if isinstance(row.payload, dict) else {}
        if payload.get("group") == group:  # its newest: a crash loop, or a worker started since
            return "FATAL" if row.type == LogType.WORKER_CRASH_LOOP else "STOPPED"
    return "STOPPED"


def _why_not(
    config: NerveConfig,
    store: LogStore | None,
    name: str,
    live: LiveSense | None,
    rows: list[LogRecord],
    since: int | None,
) -> dict[str, Any]:
    sources = sorted({source for r in config.reflexes_of(name) for source in r.on})
    asked, what = since, "the time given"
    latest = _latest_signal(store, sources)
    if asked is None and latest is not None:
        asked, what = latest.ts, f"{latest.source}'s signal {latest.ref_id}"
    strict = asked is None  # since its last compute: that compute itself is not "since"
    if asked is None:
        last = live.last_run_at if live is not None else (rows[0].ts if rows else None)
        asked, what = (last, "its last compute") if last is not None else (0, "ever")
    after = asked + 1 if strict else asked  # computes from this on count as "since"
    entries = [e for e in (live.recent if live is not None else ()) if e.at >= asked]
    ran = [e for e in entries if e.reason in _RAN and e.at >= after]
    ran_rows = [r for r in rows if r.ts >= after and r.type in OUTCOME_TYPES]
    answer: list[str] = []
    if ran or ran_rows:
        last_at = max([e.at for e in ran] + [r.ts for r in ran_rows])
        count = max(len(ran), len(ran_rows))
        answer.append(f"it did compute since then: {count} time(s), the last at {_at(last_at)}")
    answer += _blockers(config, store, name, live)
    for entry in entries:
        if entry.reason not in _RAN and entry.reason is not Reason.RAN:
            answer.append(_entry_sentence(entry))
    if live is None:
        for row in rows:
            if row.ts >= asked and row.type == LogType.SENSE_DECISION:
                answer.append(_decision_row_sentence(row))
    if latest is not None and latest.ts >= asked and latest.ref_id is not None:
        answer += _signal_fate(store, live, name, latest)
    if not answer:
        answer.append(f"nothing asked for a compute since then: {_schedule(config, name, live)}")
    return {"since": asked, "sinceWhat": what, "answer": answer}


def _blockers(
    config: NerveConfig, store: LogStore | None, name: str, live: LiveSense | None
) -> list[str]:
    """What keeps the sense from computing now."""
    group = config.senses[name].group
    state = live.state if live is not None else _offline_state(store, group)
    found = []
    if state == "FATAL":
        found.append(
            f"its group {group}'s worker is FATAL (a crash loop): nothing in the group computes "
            "until its code or its nerve.yaml entry changes"
        )
    elif state == "LOAD_ERROR":
        found.append("its code failed to load (see `nerve logs`): it computes once it loads")
    if live is not None:
        if live.running is not None:
            found.append(
                f"a compute is in flight since {_at(live.running.at)}"
                f" (trigger {live.running.trigger})"
            )
        if live.pending is not None and live.throttle_until is not None:
            found.append(
                f"throttled: trigger {live.pending.trigger} computes at "
                f"{_at(live.throttle_until)}, the end of its throttle window"
            )
        if live.grace_until is not None:
            found.append(f"held by the grace period until {_at(live.grace_until)}")
    return found


def _signal_fate(
    store: LogStore | None, live: LiveSense | None, name: str, signal: LogRecord
) -> list[str]:
    """What became of the sense's trigger for `signal`, when nothing else said so."""
    assert signal.ref_id is not None
    entries = [e for e in (live.recent if live is not None else ()) if e.signal == signal.ref_id]
    rows = [] if store is None else store.logs(parent=signal.ref_id, source=name, limit=RECENT)
    if entries or rows:
        return []  # the entries and rows above say it
    return [
        f"no decision on {signal.source}'s signal {signal.ref_id} is known: decisions that only "
        "delay a compute are kept in memory (the newest 50 per sense) and not across a restart"
    ]


def _latest_signal(store: LogStore | None, sources: Iterable[str]) -> LogRecord | None:
    if store is None:
        return None
    found = [
        row
        for source in sources
        for row in store.logs(source=source, type=LogType.SIGNAL, limit=1, newest_first=True)
    ]
    return max(found, key=lambda row: row.ts, default=None)


def _schedule(config: NerveConfig, name: str, live: LiveSense | None) -> str:
    parts = []
    for reflex in config.reflexes_of(name):
        if reflex.interval is not None:
            part = f"every {format_duration(reflex.interval)}"
            if live is not None and live.next_ticks:
                part += f" (next tick at {_at(live.next_ticks[0])})"
            parts.append(part)
        if reflex.on:
            parts.append("on signals of " + ", ".join(reflex.on))
    return "its reflexes: " + "; ".join(parts) if parts else "no reflex schedules it (manual only)"


def _entry_sentence(entry: Entry) -> str:
    what = f"trigger {entry.trigger} ({entry.kind}"
    what += f", signal {entry.signal})" if entry.signal else ")"
    match entry.reason:
        case Reason.MERGED:
            return f"{what} was merged into trigger {entry.into}, whose compute stands for it"
        case Reason.THROTTLED:
            return f"{what} was throttled until {_at(entry.until)}"
        case Reason.HELD_BY_GRACE:
            return f"{what} was held by the grace period until {_at(entry.until)}"
        case Reason.COALESCED if entry.detail:
            return f"{what} became the pending compute, behind the one in flight"
        case Reason.COALESCED:
            return f"{what} took the place of the pending trigger (the newest's details win)"
        case Reason.DROPPED:
            return f"{what} was dropped: pending when its sense was removed or nerve stopped"
        case Reason.SKIPPED:
            return f"{what} was skipped: {entry.detail or 'its group could not run it'}"
    return f"{what}: {entry.reason}"


def _decision_row_sentence(row: LogRecord) -> str:
    payload = row.payload if isinstance(row.payload, dict) else {}
    decision = payload.get("decision", "?")
    count = payload.get("count", 1)
    text = f"at {_at(row.ts)}, trigger {row.cause} was {decision}"
    if payload.get("into"):
        text += f" into trigger {payload['into']}"
    if payload.get("detail"):
        text += f": {payload['detail']}"
    if isinstance(count, int) and count > 1:
        text += f" ({count} such decisions since the previous row)"
    return text


# -- run -----------------------------------------------------------------------------------------


def explain_run(store: LogStore | None, run_id: str) -> dict[str, Any]:
    run = None if store is None else store.run(run_id)
    if store is None or run is None:
        raise NotFound(f'no workflow run "{run_id}"')
    history = [
        {"at": row.ts, **(row.payload if isinstance(row.payload, dict) else {})}
        for row in store.logs(ref_id=run_id, type=LogType.WORKFLOW_STATUS, limit=1000)
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
                "rows": [_row(row) for row in own],
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
        if entry.reason in _RAN:
            return f"computed for it: {entry.reason}"
        if entry.reason is not Reason.RAN:
            return _entry_sentence(entry)
    for row in rows:
        if row.type == LogType.SENSE_DECISION:
            return _decision_row_sentence(row)
    if entries:
        return "a compute was asked for it"
    if running:
        return "no record: its decision is older than the ledger keeps"
    return "no record in logs.db (only decisions that lose work are rows)"


# -- helpers -------------------------------------------------------------------------------------


def _row(row: LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {"id": row.id, "at": row.ts, "type": row.type, "cause": row.cause}
    if row.ref_id is not None:
        found["ref"] = row.ref_id
    if row.parent is not None:
        found["forSignal"] = row.parent
    found["payload"] = row.payload
    return found


def _at(ms: int | None) -> str:
    """A time of day in UTC, to the millisecond (the CLI shows these in the answer's sentences)."""
    if ms is None:
        return "?"
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%H:%M:%S.%f")[:-3] + " UTC"
