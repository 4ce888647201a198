"""`nerve explain sense`: a sense's schedule, what it waits for now, its recent decisions and
rows, and why it has not computed (`--why-not`)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nerve_core import LogType, NerveConfig, format_duration
from nerve_core.errors import NotFound
from nerve_store import LogRecord, LogStore

from ..senses.ledger import Entry, Reason
from ..timing.grids import IntervalGrid, grids, upcoming
from .words import OUTCOME_TYPES, RAN, RECENT, at, decision_row_sentence, entry_sentence, row_dict


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
    delayed: tuple[tuple[str, int], ...] = ()  # its delayed triggers: (timer id, due)
    rate_limit: dict[str, Any] | None = None  # {name, until}: the ctx.limit() its compute awaits


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
    reflexes = _reflexes(config, name)
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
    doc["rows"] = [row_dict(row) for row in rows]
    if why_not:
        doc["whyNot"] = _why_not(config, store, name, live, rows, since, doc["state"], reflexes)
    return doc


def _now(live: LiveSense) -> dict[str, Any]:
    now: dict[str, Any] = {}
    if live.running is not None:
        now["running"] = live.running.as_dict()
        if live.progress is not None:
            now["running"]["progress"] = live.progress
        if live.rate_limit is not None:
            now["running"]["rateLimit"] = live.rate_limit
    if live.pending is not None:
        now["pending"] = live.pending.as_dict()
    if live.throttle_until is not None:
        now["throttledUntil"] = live.throttle_until
    if live.grace_until is not None:
        now["heldUntil"] = live.grace_until
    if live.next_ticks:
        now["nextTicks"] = list(live.next_ticks)
    if live.delayed:
        now["delayed"] = [{"timerId": timer, "due": due} for timer, due in live.delayed]
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
    state: str,
    reflexes: list[dict[str, Any]],
) -> dict[str, Any]:
    sources = sorted({source for r in config.reflexes_of(name) for source in r.on})
    asked, what = since, "the time given"
    latest = _latest_signal(store, sources)
    if asked is None and latest is not None:
        asked, what = latest.ts, f"{latest.source}'s signal {latest.ref_id}"
    strict = asked is None  # since its last compute: that compute itself is not "since"
    if asked is None:
        # Its last compute ended when its last outcome was handled and its rows written: the
        # latest of those moments, so none of that compute's own rows counts as "since".
        known = [r.ts for r in rows if r.type in OUTCOME_TYPES][:1]
        if live is not None and live.last_run_at is not None:
            known.append(live.last_run_at)
        last = max(known, default=None)
        asked, what = (last, "its last compute") if last is not None else (0, "ever")
    after = asked + 1 if strict else asked  # computes from this on count as "since"
    entries = [e for e in (live.recent if live is not None else ()) if e.at >= asked]
    ran = [e for e in entries if e.reason in RAN and e.at >= after]
    ran_rows = [r for r in rows if r.ts >= after and r.type in OUTCOME_TYPES]
    answer: list[str] = []
    if ran or ran_rows:
        last_at = max([e.at for e in ran] + [r.ts for r in ran_rows])
        count = max(len(ran), len(ran_rows))
        answer.append(f"it did compute since then: {count} time(s), the last at {at(last_at)}")
    answer += _blockers(config, name, live, state)
    for entry in entries:
        if entry.reason not in RAN and entry.reason is not Reason.RAN:
            answer.append(entry_sentence(entry))
    if live is None:
        for row in rows:
            if row.ts >= asked and row.type == LogType.SENSE_DECISION:
                answer.append(decision_row_sentence(row))
    if latest is not None and latest.ts >= asked and latest.ref_id is not None:
        answer += _signal_fate(store, live, name, latest)
    if not answer:
        answer.append(f"nothing asked for a compute since then: {_schedule(reflexes)}")
    return {"since": asked, "sinceWhat": what, "answer": answer}


def _blockers(config: NerveConfig, name: str, live: LiveSense | None, state: str) -> list[str]:
    """What keeps the sense from computing now (`state`: its group's, live or last known)."""
    group = config.senses[name].group
    found = []
    if state == "FATAL":
        found.append(
            f"its group {group}'s worker is FATAL (a crash loop): nothing in the group computes "
            "until its code or its nerve.yaml entry changes"
        )
    elif state == "PARKED":
        found.append(
            "it is parked: its computes kept killing its worker (see its sense.parked row); it "
            "computes again when its cool-down ends or when its group's code or config changes"
        )
    elif state == "LOAD_ERROR":
        found.append("its code failed to load (see `nerve logs`): it computes once it loads")
    if live is not None:
        if live.running is not None:
            found.append(
                f"a compute is in flight since {at(live.running.at)}"
                f" (trigger {live.running.trigger})"
            )
            if live.rate_limit is not None:
                found.append(
                    f"its compute waits in ctx.limit({live.rate_limit['name']!r}) until "
                    f"{at(live.rate_limit['until'])}: the rate allows no call sooner"
                )
        if live.pending is not None and live.throttle_until is not None:
            found.append(
                f"throttled: trigger {live.pending.trigger} computes at "
                f"{at(live.throttle_until)}, the end of its throttle window"
            )
        if live.grace_until is not None:
            found.append(f"held by the grace period until {at(live.grace_until)}")
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


def _reflexes(config: NerveConfig, name: str) -> list[dict[str, Any]]:
    """Each timer of `name` with its next three fire times (jitter included), and its `on`."""
    reflexes: list[dict[str, Any]] = []
    wall = time.time()
    for reflex in config.reflexes_of(name):
        for grid in grids(reflex):
            timer: dict[str, Any] = (
                {"interval": format_duration(reflex.interval)}
                if isinstance(grid, IntervalGrid) and reflex.interval is not None
                else {"cron": reflex.cron, "timezone": reflex.timezone or "local"}
            )
            timer["catchUp"] = str(reflex.catch_up)
            if reflex.jitter:
                timer["jitter"] = format_duration(reflex.jitter)
            fires = upcoming(name, reflex, grid, wall, 3)
            timer["next"] = [round(fire * 1000) for fire in fires]
            reflexes.append(timer)
        if reflex.on:
            reflexes.append({"on": list(reflex.on)})
    return reflexes


def _schedule(reflexes: list[dict[str, Any]]) -> str:
    """The reflexes `_reflexes` found (their next fires computed once), in words."""
    parts = []
    for timer in reflexes:
        if "on" in timer:
            parts.append("on signals of " + ", ".join(timer["on"]))
            continue
        what = f"every {timer['interval']}" if "interval" in timer else f"cron {timer['cron']}"
        parts.append(f"{what} (next at {at(timer['next'][0])})")
    return "its reflexes: " + "; ".join(parts) if parts else "no reflex schedules it (manual only)"
