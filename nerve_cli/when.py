"""`--in` and `--at` of the trigger commands: when a delayed trigger is due, in ms since the
epoch. `--in` takes a duration (`10m`, `1h30m`); `--at` an ISO 8601 time (`2026-12-24T09:00`,
with an offset or in local time) or a time of day (`09:00`, `9:30:15`: the next one, local)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import typer

_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def due_ms(delay: str | None, at: str | None) -> int | None:
    """The due time the options ask for, or None for a trigger now."""
    from nerve_core import parse_duration

    if delay is not None and at is not None:
        raise typer.BadParameter("give --in or --at, not both", param_hint="--in/--at")
    if delay is not None:
        parsed = parse_duration(delay)
        if not parsed.ok:
            raise typer.BadParameter(parsed.error, param_hint="--in")
        return time.time_ns() // 1_000_000 + round(parsed.value * 1000)
    if at is None:
        return None
    return round(_parse_at(at).timestamp() * 1000)


def _parse_at(text: str) -> datetime:
    now = datetime.now().astimezone()
    if match := _TIME_OF_DAY.fullmatch(text.strip()):
        hour, minute, second = (int(part or 0) for part in match.groups())
        if hour > 23 or minute > 59 or second > 59:
            raise typer.BadParameter(f"no such time of day: {text}", param_hint="--at")
        due = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        return due if due > now else due + timedelta(days=1)
    try:
        due = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"not a time: {text!r} (expected HH:MM or ISO 8601, e.g. 2026-12-24T09:00)",
            param_hint="--at",
        ) from None
    due = due if due.tzinfo is not None else due.astimezone()
    if due.year > 9999 or due < now - timedelta(days=366):
        raise typer.BadParameter(f"{text} is too far from now", param_hint="--at")
    return due
